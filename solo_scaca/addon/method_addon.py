"""The add-on as a mixin for any host method (docs/method.md section 9).

``class SwAVSCACA(CrossAttentionAddon, SwAV)``: the host method's own step runs unchanged; the
mixin records the large crops' spatial maps and outputs while it runs, pairs the images, masks
their maps, and adds ``ca_weight * L_ca``. A method states only what differs (the hooks below):
the online head ``h`` applied to a masked feature, the targets of its loss, the loss with the
masked outputs in place of the online ones, and (where it has them) the codes for pairing.
"""

import numbers
from typing import Any, Dict, List, Optional, Sequence, Tuple

import omegaconf
import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_warn
from solo.utils.misc import concat_all_gather_no_grad, get_rank, omegaconf_select
from solo.utils.misc import gather as all_gather_with_grad

from solo_scaca.addon.cross_attention import (
    KEY_MODES,
    MASK_MODES,
    RESPONSE_MODES,
    SpatialCrossAttention,
)
from solo_scaca.addon.mechanism_metrics import labels_are_real, mechanism_metrics, same_share
from solo_scaca.addon.pairing import PAIRING_MODES, random_partners, select_partners
from solo_scaca.addon.spatial_maps import SpatialMapHook, check_backbone

COMMON_KEYS = (
    "ca_pairing",
    "ca_weight",
    "ca_dim",
    "ca_attn_temperature",
    "ca_mask_temperature",
    "ca_warmup_epochs",
    "ca_gather_partners",
    "ca_mask",
    "ca_keys",
    "ca_response",
)
# string-valued CA keys: default and allowed values (the pairing's are the method's own)
CA_CHOICES = {
    "ca_mask": ("cross", MASK_MODES),
    "ca_keys": ("learned", KEY_MODES),
    "ca_response": ("logsumexp", RESPONSE_MODES),
}
# numeric CA keys: default, lower bound, strict bound, integer
CA_NUMBERS = {
    "ca_weight": (1.0, 0, False, False),
    "ca_dim": (128, 0, True, True),
    "ca_attn_temperature": (0.1, 0, True, False),
    "ca_mask_temperature": (0.1, 0, True, False),
}


def check_number(cfg: omegaconf.DictConfig, key: str, low: float, strict: bool, integer: bool):
    """A clear error naming ``method_kwargs.<key>`` and the allowed values."""
    value = cfg.method_kwargs[key]
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool)
    ok = ok and (value > low if strict else value >= low)
    if not ok:
        allowed = f"{'an integer' if integer else 'a number'} {'>' if strict else '>='} {low}"
        raise ValueError(f"method_kwargs.{key}={value!r} is invalid: allowed values are {allowed}")


def get_world_size() -> int:
    """Number of processes of the (possibly absent) default process group."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class CrossAttentionAddon:
    """Spatial cross-attention for a host method; list it before the host class."""

    NAME: str = ""  # the registry name, e.g. "swav_scaca"
    CA_KEYS: Tuple[str, ...] = COMMON_KEYS  # every ca_* key the method accepts
    PAIRINGS: Tuple[str, ...] = PAIRING_MODES  # the pairings the method can run
    DEFAULT_PAIRING: str = "prototype"
    # buffers the host creates in on_train_start (after Lightning restored a checkpoint): made
    # room for before the weights load, and kept instead of the host's fresh ones
    LATE_BUFFERS: Tuple[str, ...] = ()

    def __init__(self, cfg: omegaconf.DictConfig):
        super().__init__(cfg)
        kwargs = cfg.method_kwargs
        self.ca_pairing: str = kwargs.ca_pairing
        self.ca_weight: float = kwargs.ca_weight
        self.ca_warmup_epochs: float = kwargs.ca_warmup_epochs
        self.ca_gather_partners: bool = kwargs.ca_gather_partners
        self.run_seed: int = int(omegaconf_select(cfg, "seed", 0) or 0)

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
            )
            if self.ca_weight > 0
            else None
        )
        # filled by forward (and the methods' side channels) during a training step only
        self._step_outs: Optional[List[Dict[str, Any]]] = None

    # ----------------------------------------------------------------- what a method states

    @classmethod
    def ca_defaults(cls, cfg: omegaconf.DictConfig) -> Dict[str, Any]:
        """Method-specific defaults of CA keys (e.g. the ramp's length)."""
        return {"ca_warmup_epochs": 0.0}

    @classmethod
    def ca_check_method_keys(cls, cfg: omegaconf.DictConfig) -> None:
        """Defaults and checks of the method's own extra CA keys (none by default)."""

    def ca_head_outputs(self, feats: torch.Tensor) -> Any:
        """The online head h applied to (masked) pooled features."""
        raise NotImplementedError

    def ca_targets(self, batch: Sequence[Any]) -> Any:
        """The targets of the method's loss for this step (after the host's step ran), or None
        when the method has none yet (the CA term is skipped)."""
        raise NotImplementedError

    def ca_codes(self, targets: Any, outs: List[Dict[str, Any]]) -> Optional[List[torch.Tensor]]:
        """Per large crop, a B x K distribution for ``prototype`` pairing and the same-prototype
        metric; None for a method without codes or class-like outputs."""
        return None

    def ca_loss(self, masked_outputs: List[Any], targets: Any, batch: Sequence[Any],
                partner_codes: Optional[List[torch.Tensor]]) -> torch.Tensor:
        """The method's loss with the masked outputs in place of the large crops' outputs."""
        raise NotImplementedError

    def ca_reset_step(self) -> None:
        """Closes the method's own side channels after a step (none by default)."""

    @torch.no_grad()
    def ca_inference_codes(self, images: torch.Tensor,
                           out: Dict[str, Any]) -> Optional[torch.Tensor]:
        """Outside training (drawing masks): the B x K codes ``prototype`` pairing uses for a
        batch of images whose forward output is ``out``; None for a method without codes."""
        return None

    # ------------------------------------------------------------------------- configuration

    @classmethod
    def add_and_assert_specific_cfg(cls, cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Adds the add-on's defaults to the host method's and checks every CA setting.

        Args:
            cfg (omegaconf.DictConfig): DictConfig object.

        Returns:
            omegaconf.DictConfig: same as the argument, used to avoid errors.
        """
        cfg = super(CrossAttentionAddon, cls).add_and_assert_specific_cfg(cfg)
        name = cls.NAME
        unknown = [k for k in cfg.method_kwargs if k.startswith("ca_") and k not in cls.CA_KEYS]
        if unknown:
            raise ValueError(
                f"unknown method_kwargs {unknown} for {name}: allowed CA keys are {cls.CA_KEYS}"
            )
        check_backbone(cfg.backbone.name)

        kwargs = cfg.method_kwargs
        choices = {"ca_pairing": (cls.DEFAULT_PAIRING, cls.PAIRINGS), **CA_CHOICES}
        for key, (default, allowed) in choices.items():
            kwargs[key] = omegaconf_select(cfg, f"method_kwargs.{key}", default)
            if kwargs[key] not in allowed:
                raise ValueError(
                    f"method_kwargs.{key}={kwargs[key]!r} is invalid for {name}: allowed values "
                    f"are {allowed}"
                )
        for key, (default, low, strict, integer) in CA_NUMBERS.items():
            kwargs[key] = omegaconf_select(cfg, f"method_kwargs.{key}", default)
            check_number(cfg, key, low, strict, integer)
        for key, default in cls.ca_defaults(cfg).items():
            kwargs[key] = omegaconf_select(cfg, f"method_kwargs.{key}", default)
        check_number(cfg, "ca_warmup_epochs", 0, strict=False, integer=False)
        kwargs.ca_gather_partners = omegaconf_select(
            cfg, "method_kwargs.ca_gather_partners", False
        )
        if not isinstance(kwargs.ca_gather_partners, bool):
            raise ValueError(
                f"method_kwargs.ca_gather_partners={kwargs.ca_gather_partners!r} is invalid: "
                "allowed values are True and False"
            )
        cls.ca_check_method_keys(cfg)

        batch_size = cfg.optimizer.batch_size
        if not isinstance(batch_size, int) or batch_size < 2:
            raise ValueError(
                f"optimizer.batch_size={batch_size!r} is invalid for {name}: it pairs "
                "images within each process's batch, so allowed values are integers >= 2"
            )
        return cfg

    @property
    def learnable_params(self) -> List[dict]:
        """Adds the add-on's parameters to the host method's learnable parameters."""
        extra = [] if self.ca_head is None else [
            {"name": "ca_head", "params": self.ca_head.parameters()}
        ]
        return super().learnable_params + extra

    # ---------------------------------------------------------------- checkpoints and seeding

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Makes room for the saved late buffers before the weights load (the host creates
        them only in ``on_train_start``, so resuming would fail on unexpected keys)."""
        super().on_load_checkpoint(checkpoint)
        for name in self.LATE_BUFFERS:
            saved = checkpoint["state_dict"].get(name)
            if saved is not None:
                self.register_buffer(name, torch.zeros_like(saved, device=self.device))

    def on_train_start(self) -> None:
        """The host's set-up, keeping late buffers restored from a checkpoint (the host
        re-creates them)."""
        restored = {name: self._buffers.get(name) for name in self.LATE_BUFFERS}
        super().on_train_start()
        for name, value in restored.items():
            current = self._buffers.get(name)
            if value is not None and current is not None and value.shape == current.shape:
                current.copy_(value)

    def on_train_epoch_start(self) -> None:
        """Seeds torch for the epoch from the run's seed and the epoch number, so that an epoch
        draws the same data order, augmentations and random partners whether the run went on
        or resumed from the previous epoch's checkpoint (after a kill, say). Seeded before the
        host's set-up, which may draw too (DeepClusterV2's k-means centroids)."""
        torch.manual_seed((self.run_seed * 1_000_003 + self.current_epoch) % 2**63)
        super().on_train_epoch_start()

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

    @torch.no_grad()
    def log_mechanism_metrics(
        self,
        masks: List[torch.Tensor],
        probe_masks: List[torch.Tensor],
        codes: Optional[List[torch.Tensor]],
        partner_codes: Optional[List[torch.Tensor]],
        labels: Optional[torch.Tensor],
        partner_labels: Optional[List[torch.Tensor]],
    ) -> None:
        """Logs whether the mask attends and depends on the partner (docs/method.md section 6) as
        ``train_ca_*``; the same-prototype share only with codes, the same-class share only with
        ``partner_labels`` (real labels)."""
        same_prototype = None
        if codes is not None:
            same_prototype = torch.stack([
                same_share(q.argmax(dim=1), p.argmax(dim=1))
                for q, p in zip(codes, partner_codes)
            ]).mean()
        same_class = None
        if partner_labels is not None:
            same_class = torch.stack([same_share(labels, p) for p in partner_labels]).mean()
        metrics = mechanism_metrics(masks, probe_masks, same_prototype, same_class)
        # diagnostics: no all-reduce per step under DDP (each process logs its own batch)
        for name, value in metrics.items():
            self.log(f"train_{name}", value, on_epoch=True)

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """The host method's training step (unchanged) plus ``lambda * L_ca`` on the large crops.

        The host's step consumes the per-crop outputs; the large crops' outputs are kept as
        ``forward`` produces them, the targets as the method's side channels record them.
        """
        self._step_outs = []
        try:
            loss = super().training_step(batch, batch_idx)
            outs = self._step_outs[: self.num_large_crops]
            targets = self.ca_targets(batch) if self.ca_head is not None else None
        finally:  # never leave the side channels open, even when the host's step raised
            self._step_outs = None
            self.ca_reset_step()
        if targets is None:
            return loss if self.ca_head is None else loss + self.ca_zero_term()
        fmaps = [out["fmap"] for out in outs]
        if fmaps[0].size(0) < 2 and (
            self.ca_pairing != "self" or self.ca_head.response == "contrast"
        ):
            rank_zero_warn(
                f"{self.NAME}: a batch of {fmaps[0].size(0)} image cannot be paired "
                f"(ca_pairing={self.ca_pairing!r}, ca_response={self.ca_head.response!r}); "
                "the CA term is skipped for this step"
            )
            return loss + self.ca_zero_term()

        codes = self.ca_codes(targets, outs)
        z = [out["z"] for out in outs]
        labels = batch[-1] if torch.is_tensor(batch[-1]) else None
        candidate_codes, candidate_z, candidate_labels = codes, z, labels
        offset, gather = 0, None
        if self.ca_gather_partners and get_world_size() > 1:
            if codes is not None:
                candidate_codes = [concat_all_gather_no_grad(q) for q in codes]
            candidate_z = [concat_all_gather_no_grad(v) for v in z]
            candidate_labels = None if labels is None else concat_all_gather_no_grad(labels)
            offset, gather = get_rank() * len(fmaps[0]), all_gather_with_grad
        partners = select_partners(
            self.ca_pairing, codes, z, candidate_codes, candidate_z, offset
        )
        # a random other image per view: the probe partners of the partner-sensitivity metric
        # and, drawn independently, the negatives of ca_response=contrast
        batch_size, num_candidates = len(fmaps[0]), len(candidate_z[0])

        def draw_randoms():
            return [(v, random_partners(batch_size, num_candidates, fmaps[0].device, offset))
                    for v in range(len(fmaps))] if num_candidates > 1 else None

        probes = draw_randoms()
        negatives = draw_randoms() if self.ca_head.response == "contrast" else None
        ca = self.ca_head(fmaps, partners, gather, negatives=negatives, probes=probes)
        masked_outputs = [
            self.ca_head_outputs(self.spatial_map_hook.feature_head(f)) for f in ca.feats
        ]
        partner_codes = None if codes is None else [
            candidate_codes[view][index] for view, index in partners
        ]
        # one check of the candidates' labels (a device sync), not one per view
        partner_labels = ([candidate_labels[index] for _, index in partners]
                          if labels_are_real(candidate_labels) else None)
        self.log_mechanism_metrics(ca.masks, ca.probe_masks, codes, partner_codes, labels,
                                   partner_labels)
        ca_loss = self.ca_loss(masked_outputs, targets, batch, partner_codes)
        if not torch.isfinite(ca_loss):
            raise FloatingPointError(
                f"{self.NAME}: the CA loss is {ca_loss.item()} at epoch {self.current_epoch}, "
                f"global step {self.global_step} (batch {batch_idx}); training stopped and the "
                "checkpoints written so far are kept. Lower the lr, or raise "
                "ca_attn_temperature / ca_mask_temperature."
            )
        weight = self.ca_weight * self.ca_ramp(batch_idx)
        self.log("train_ca_loss", ca_loss, on_epoch=True, sync_dist=True)
        self.log("train_ca_weight", weight, on_epoch=False)
        if get_world_size() > 1:  # share of partners found in another process's batch
            local = torch.cat([(i >= offset) & (i < offset + len(i)) for _, i in partners])
            self.log("train_ca_remote_partners", 1 - local.float().mean(), on_epoch=False)
        return loss + weight * ca_loss


class MomentumAddon(CrossAttentionAddon):
    """The add-on for a host method with a momentum (teacher) branch: records the large crops'
    momentum outputs ``z`` (the targets of BYOL and DINO) while the host's step runs."""

    def __init__(self, cfg: omegaconf.DictConfig):
        super().__init__(cfg)
        self._step_momentum_z: List[torch.Tensor] = []

    @torch.no_grad()
    def momentum_forward(self, X: torch.Tensor) -> Dict[str, Any]:
        """The host's momentum forward pass, its ``z`` kept during a training step."""
        out = super().momentum_forward(X)
        if self._step_outs is not None:
            self._step_momentum_z.append(out["z"])
        return out

    def on_train_start(self) -> None:
        """The host's set-up; on a resumed run, the momentum tau where its schedule stands (the
        host restarts it at ``base_tau`` until the first step ends)."""
        super().on_train_start()
        if self.trainer.global_step > 0:
            self.momentum_updater.update_tau(
                cur_step=self.trainer.global_step,
                max_steps=self.trainer.estimated_stepping_batches,
            )

    def ca_reset_step(self) -> None:
        self._step_momentum_z = []
