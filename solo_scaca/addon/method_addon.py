"""The add-on as a mixin for any host method (docs/method.md section 9).

``class SwAVSCACA(CrossAttentionAddon, SwAV)``: the host method's own step runs unchanged; the
mixin records the large crops' spatial maps and outputs while it runs, pairs the images, masks
their maps, and adds ``ca_weight * L_ca``. A method states only what differs (the hooks below):
the online head ``h`` applied to a masked feature, the targets of its loss, the loss with the
masked outputs in place of the online ones, and (where it has them) the codes for pairing.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import omegaconf
import torch
from lightning.pytorch.utilities import rank_zero_warn

from solo_scaca.addon import objectives as obj
from solo_scaca.addon.config import CA_SCHEMA, Spec, apply_schema
from solo_scaca.addon.cross_attention import CrossAttentionOutput, SpatialCrossAttention
from solo_scaca.addon.batch_pairing import Pairing, get_world_size, pair_batch
from solo_scaca.addon.mechanism_metrics import mechanism_metrics, same_share
from solo_scaca.addon.run_state import (
    AddonParams,
    EpochSeeding,
    LateBuffers,
    MomentumResume,
    check_finite,
)
from solo_scaca.addon.spatial_maps import SpatialMapHook, check_backbone


class CrossAttentionAddon(AddonParams, LateBuffers, EpochSeeding):
    """Spatial cross-attention for a host method; list it before the host class:
    ``class SwAVSCACA(CrossAttentionAddon, SwAV)``.

    The host method's own step runs unchanged; the mixin records the large crops' spatial maps
    and outputs while it runs, pairs the images, masks their maps as ``ca_objective`` says, and
    adds ``ca_weight * L_ca``. The contract of a method file (everything else is here):

    - ``NAME``: the registry name; ``CA_SCHEMA``: its CA keys (``config.CA_SCHEMA``, with its
      own pairings and defaults replaced or keys added); ``LATE_BUFFERS``: buffers the host
      creates in ``on_train_start`` (restored on resume).
    - ``ca_head_outputs(feats)``: the online head h applied to (masked) pooled features.
    - ``ca_targets(batch)``: the targets of the method's loss for this step, as its own step
      recorded them (None: the CA term is skipped this step).
    - ``ca_targets_of(feats, targets)``: the same targets computed from pooled features
      (per large crop, no gradient): what ``self_masked`` and ``co`` score against. A method
      whose targets have no such counterpart leaves those objectives out of its schema.
    - ``ca_loss(outputs, targets, batch, partner_codes)``: the method's loss with the given
      outputs in place of the large crops' online outputs, each view against the others'
      targets.
    - optional: ``ca_codes`` (codes for ``prototype`` pairing and the same-prototype metric),
      ``ca_inference_codes`` (the same outside training, for drawing masks),
      ``ca_reset_step`` (closes the method's side channels after a step).
    """

    NAME: str = ""  # the registry name, e.g. "swav_scaca"
    ADDON_HEAD = "ca_head"
    CA_SCHEMA: Dict[str, Spec] = CA_SCHEMA

    def __init_subclass__(cls, **kwargs: Any):
        """``CA_KEYS``, ``PAIRINGS`` and ``DEFAULT_PAIRING`` as the schema says."""
        super().__init_subclass__(**kwargs)
        cls.CA_KEYS = tuple(cls.CA_SCHEMA)
        cls.PAIRINGS = cls.CA_SCHEMA["ca_pairing"].allowed
        cls.DEFAULT_PAIRING = cls.CA_SCHEMA["ca_pairing"].default

    def __init__(self, cfg: omegaconf.DictConfig):
        super().__init__(cfg)
        kwargs = cfg.method_kwargs
        self.ca_pairing: str = kwargs.ca_pairing
        self.ca_objective: str = kwargs.ca_objective
        self.ca_weight: float = kwargs.ca_weight
        self.ca_warmup_epochs: float = kwargs.ca_warmup_epochs
        self.ca_gather_partners: bool = kwargs.ca_gather_partners
        self.ca_bg_weight: float = kwargs.ca_bg_weight
        self.ca_area_weight: float = kwargs.ca_area_weight
        self.ca_metrics_every: int = kwargs.ca_metrics_every

        self.spatial_map_hook = SpatialMapHook(self.backbone, cfg.backbone.name)
        # everything the add-on learns lives here, outside the backbone; with ca_weight = 0
        # there is no add-on at all (nothing unused for DDP, and exactly the host's method)
        self.ca_head = (
            SpatialCrossAttention(
                self.features_dim,
                ca_dim=kwargs.ca_dim,
                attn_temperature=kwargs.ca_attn_temperature,
                mask_temperature=kwargs.ca_mask_temperature,
                mask=kwargs.ca_mask,
                keys=kwargs.ca_keys,
                response=kwargs.ca_response,
                objective=kwargs.ca_objective,
            )
            if self.ca_weight > 0
            else None
        )
        # filled by forward (and the methods' side channels) during a training step only
        self._step_outs: Optional[List[Dict[str, Any]]] = None

    # ----------------------------------------------------------------- what a method states

    def ca_head_outputs(self, feats: torch.Tensor) -> Any:
        raise NotImplementedError

    def ca_targets(self, batch: Sequence[Any]) -> Any:
        raise NotImplementedError

    def ca_targets_of(self, feats: List[torch.Tensor], targets: Any) -> Any:
        raise NotImplementedError(f"{self.NAME} has no targets of pooled features")

    def ca_codes(self, targets: Any, outs: List[Dict[str, Any]]) -> Optional[List[torch.Tensor]]:
        return None

    def ca_loss(self, masked_outputs: List[Any], targets: Any, batch: Sequence[Any],
                partner_codes: Optional[List[torch.Tensor]]) -> torch.Tensor:
        raise NotImplementedError

    def ca_reset_step(self) -> None:
        """Closes the method's own side channels after a step (none by default)."""

    @torch.no_grad()
    def ca_inference_codes(self, images: torch.Tensor,
                           out: Dict[str, Any]) -> Optional[torch.Tensor]:
        return None

    def ca_keep_z(self, kept: List[torch.Tensor], out: Dict[str, Any]) -> Dict[str, Any]:
        """Keeps a host forward pass's ``z`` in ``kept`` during a training step; returns
        ``out``."""
        if self._step_outs is not None:
            kept.append(out["z"])
        return out

    # ------------------------------------------------------------------------- configuration

    @classmethod
    def add_and_assert_specific_cfg(cls, cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Adds the add-on's defaults to the host method's and checks every CA setting."""
        cfg = super(CrossAttentionAddon, cls).add_and_assert_specific_cfg(cfg)
        check_backbone(cfg.backbone.name)
        apply_schema(cfg, cls.CA_SCHEMA, cls.NAME)
        return cfg

    # ------------------------------------------------------------------------------ training

    def forward(self, X: torch.Tensor) -> Dict[str, Any]:
        """The host's forward pass, plus the backbone's spatial map ``fmap`` (B x C x H x W)."""
        with self.spatial_map_hook.capture() as hook:
            out = super().forward(X)
        out["fmap"] = hook.fmap
        if self._step_outs is not None:
            self._step_outs.append(out)
        return out

    def ca_zero_term(self) -> torch.Tensor:
        """0, with every add-on parameter in its graph: a step that skips the CA term still
        gives DDP a gradient (zero) for each of them, as it requires."""
        return sum(p.sum() for p in self.ca_head.parameters()) * 0.0

    def ca_ramp(self, batch_idx: int) -> float:
        """Linear ramp of the CA weight from 0 to 1 over ``ca_warmup_epochs``."""
        if self.ca_warmup_epochs <= 0:
            return 1.0
        epoch = float(self.current_epoch)
        batches = self._trainer.num_training_batches if self._trainer is not None else 0
        if 0 < batches < float("inf"):
            epoch += batch_idx / batches
        return min(1.0, epoch / self.ca_warmup_epochs)

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """The host method's training step (unchanged) plus ``lambda * L_ca`` on the large crops:
        the host's step, partners, masked features, metrics, the objective's loss, the guard."""
        loss, outs, targets = self._host_step(batch, batch_idx)
        if targets is None:
            return loss if self.ca_head is None else loss + self.ca_zero_term()
        fmaps = [out["fmap"] for out in outs]
        if not self._can_pair(len(fmaps[0])):
            return loss + self.ca_zero_term()
        metrics = self._metrics_step(batch_idx)
        pairing = self._pair(outs, targets, batch, metrics)
        ca = self.ca_head(fmaps, pairing.partners, pairing.gather, negatives=pairing.negatives,
                          probes=pairing.probes)
        if metrics:
            self._log_mechanism_metrics(ca, pairing, batch)
        ca_loss = self.ca_objective_loss(ca, targets, batch, pairing.partner_codes)
        check_finite(self, "CA loss", ca_loss, batch_idx, "Lower the lr, or raise "
                     "ca_attn_temperature / ca_mask_temperature.")
        weight = self.ca_weight * self.ca_ramp(batch_idx)
        self.log("train_ca_loss", ca_loss, on_epoch=True, sync_dist=True)
        self.log("train_ca_weight", weight, on_epoch=False)
        if get_world_size() > 1:  # share of partners found in another process's batch
            local = torch.cat([(i >= pairing.offset) & (i < pairing.offset + len(i))
                               for _, i in pairing.partners])
            self.log("train_ca_remote_partners", 1 - local.float().mean(), on_epoch=False)
        return loss + weight * ca_loss

    def _host_step(self, batch: Sequence[Any], batch_idx: int) -> Tuple[torch.Tensor, list, Any]:
        """The host's step, with the large crops' outputs and the method's targets it left."""
        self._step_outs = []
        try:
            loss = super().training_step(batch, batch_idx)
            outs = self._step_outs[: self.num_large_crops]
            targets = self.ca_targets(batch) if self.ca_head is not None else None
        finally:  # never leave the side channels open, even when the host's step raised
            self._step_outs = None
            self.ca_reset_step()
        return loss, outs, targets

    def _can_pair(self, batch_size: int) -> bool:
        if batch_size >= 2 or (self.ca_pairing == "self" and self.ca_head.response != "contrast"):
            return True
        rank_zero_warn(
            f"{self.NAME}: a batch of {batch_size} image cannot be paired "
            f"(ca_pairing={self.ca_pairing!r}, ca_response={self.ca_head.response!r}); "
            "the CA term is skipped for this step"
        )
        return False

    def _pair(self, outs: List[Dict[str, Any]], targets: Any, batch: Sequence[Any],
              probes: bool) -> Pairing:
        labels = batch[-1] if torch.is_tensor(batch[-1]) else None
        return pair_batch(self.ca_pairing, self.ca_codes(targets, outs),
                          [out["z"] for out in outs], labels, self.ca_gather_partners,
                          probes=probes,
                          negatives=self.ca_head.response == "contrast")

    def ca_objective_loss(self, ca: CrossAttentionOutput, targets: Any, batch: Sequence[Any],
                          partner_codes: Optional[List[torch.Tensor]]) -> torch.Tensor:
        """``L_ca`` of ``ca_objective``: the method's loss of the masked outputs against its
        targets (``self``, ``fixed``, ``attend``), against the targets of the other views'
        masked features (``self_masked``), against the partners' co-masked targets (``co``:
        view v's image i is scored against its partner's target, placed as view v+1's), or
        plus a penalty on what the mask leaves out and an area prior (``complement``)."""
        head = self.spatial_map_hook.feature_head
        outputs = [self.ca_head_outputs(head(f)) for f in ca.feats]
        if self.ca_objective == "self_masked":
            targets = self.ca_targets_of([head(f.detach()) for f in ca.feats], targets)
        elif self.ca_objective == "co":
            partner = [head(f.detach()) for f in ca.partner_feats]
            targets = self.ca_targets_of(partner[-1:] + partner[:-1], targets)
        loss = self.ca_loss(outputs, targets, batch, partner_codes)
        if self.ca_objective == "complement":
            with obj.frozen(self):  # the background branch trains the mask only
                background = [self.ca_head_outputs(head(f)) for f in ca.background]
                agreement = torch.exp(-self.ca_loss(background, targets, batch, partner_codes))
            area = torch.cat([obj.area_penalty(a) for a in ca.area]).mean()
            loss = loss + self.ca_bg_weight * agreement + self.ca_area_weight * area
        return loss

    def _metrics_step(self, batch_idx: int) -> bool:
        """Every ``ca_metrics_every`` steps, and at each epoch's first step (an epoch shorter
        than the stride still logs its metrics)."""
        return batch_idx == 0 or self.global_step % self.ca_metrics_every == 0

    @torch.no_grad()
    def _log_mechanism_metrics(self, ca: CrossAttentionOutput, pairing: Pairing,
                               batch: Sequence[Any]) -> None:
        """Logs whether the mask attends and depends on the partner (docs/method.md section 6) as
        ``train_ca_*``; the same-prototype share only with codes, the same-class share only with
        real labels."""
        same_prototype = same_class = None
        if pairing.codes is not None:
            same_prototype = torch.stack([
                same_share(q.argmax(dim=1), p.argmax(dim=1))
                for q, p in zip(pairing.codes, pairing.partner_codes)
            ]).mean()
        if pairing.partner_labels is not None:
            same_class = torch.stack([same_share(batch[-1], p)
                                      for p in pairing.partner_labels]).mean()
        metrics = mechanism_metrics(ca.masks, ca.probe_masks, same_prototype, same_class)
        # diagnostics: no all-reduce per step under DDP (each process logs its own batch)
        for name, value in metrics.items():
            self.log(f"train_{name}", value, on_epoch=True)


class MomentumAddon(MomentumResume, CrossAttentionAddon):
    """The add-on for a host method with a momentum (teacher) branch: records the large crops'
    momentum outputs ``z`` (the targets of BYOL and DINO) while the host's step runs."""

    def __init__(self, cfg: omegaconf.DictConfig):
        super().__init__(cfg)
        self._step_momentum_z: List[torch.Tensor] = []

    @torch.no_grad()
    def momentum_forward(self, X: torch.Tensor) -> Dict[str, Any]:
        """The host's momentum forward pass, its ``z`` kept during a training step."""
        return self.ca_keep_z(self._step_momentum_z, super().momentum_forward(X))

    def ca_reset_step(self) -> None:
        self._step_momentum_z = []
