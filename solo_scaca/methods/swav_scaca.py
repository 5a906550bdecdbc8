"""SwAV with the spatial cross-attention add-on (``method=swav_scaca``, docs/method.md).

Subclasses the host's SwAV: its projector, prototypes, queue, Sinkhorn and loss run unchanged;
the add-on (``ca_head``) adds a masked branch and the CA loss term on the large crops.
"""

import numbers
from typing import Any, Dict, List, Optional, Sequence

import omegaconf
import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from solo.methods.swav import SwAV
from solo.utils.misc import concat_all_gather_no_grad, get_rank, omegaconf_select
from solo.utils.misc import gather as all_gather_with_grad

from solo_scaca.addon.cross_attention import (
    KEY_MODES,
    MASK_MODES,
    RESPONSE_MODES,
    SpatialCrossAttention,
)
from solo_scaca.addon.losses import ca_loss_func
from solo_scaca.addon.mechanism_metrics import labels_are_real, mechanism_metrics, same_share
from solo_scaca.addon.pairing import PAIRING_MODES, random_partners, select_partners
from solo_scaca.addon.spatial_maps import SpatialMapHook, check_backbone

CA_KEYS = (
    "ca_pairing",
    "ca_weight",
    "ca_dim",
    "ca_attn_temperature",
    "ca_mask_temperature",
    "ca_partner_weight",
    "ca_warmup_epochs",
    "ca_gather_partners",
    "ca_mask",
    "ca_keys",
    "ca_response",
)
# string-valued CA keys: default and allowed values
CA_CHOICES = {
    "ca_pairing": ("prototype", PAIRING_MODES),
    "ca_mask": ("cross", MASK_MODES),
    "ca_keys": ("learned", KEY_MODES),
    "ca_response": ("logsumexp", RESPONSE_MODES),
}


def _check_number(cfg: omegaconf.DictConfig, key: str, low: float, strict: bool, integer: bool):
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


class SwAVSCACA(SwAV):
    def __init__(self, cfg: omegaconf.DictConfig):
        """Implements SwAV + spatial cross-attention (https://arxiv.org/abs/2206.05028).

        Extra cfg settings (besides SwAV's):
            method_kwargs:
                ca_pairing (str): partner selection: prototype, nn, self or random.
                ca_weight (float): weight lambda of the CA loss (0 gives plain SwAV).
                ca_dim (int): dimension of the query/key projections.
                ca_attn_temperature (float): tau_a, soft max over the partner's locations.
                ca_mask_temperature (float): tau_m, softmax of the mask over locations.
                ca_partner_weight (float): weight of the masked branch's loss against the
                    partner's codes.
                ca_warmup_epochs (float): epochs of the linear ramp of ca_weight from 0.
                ca_gather_partners (bool): pick partners from the batches of all processes
                    (DDP) instead of the local batch.
                ca_mask (str): cross (the cross-attention mask) or uniform (1/HW: the
                    extra-loss control, L = (1 + ca_weight) L_swav without multi-crop).
                ca_keys (str): learned (phi_q, phi_k) or features (the backbone's own map,
                    L2-normalised: the raw spatial cross-correlation).
                ca_response (str): logsumexp (soft max over the partner's locations), mean,
                    or contrast (response to the partner minus that to a random image).
        """
        super().__init__(cfg)
        kwargs = cfg.method_kwargs
        self.ca_pairing: str = kwargs.ca_pairing
        self.ca_weight: float = kwargs.ca_weight
        self.ca_partner_weight: float = kwargs.ca_partner_weight
        self.ca_warmup_epochs: float = kwargs.ca_warmup_epochs
        self.ca_gather_partners: bool = kwargs.ca_gather_partners
        self.run_seed: int = int(omegaconf_select(cfg, "seed", 0) or 0)

        self.spatial_map_hook = SpatialMapHook(self.backbone, cfg.backbone.name)
        # everything the add-on learns lives here, outside the backbone; with ca_weight = 0
        # there is no add-on at all (nothing unused for DDP, and exactly the host's SwAV)
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
        # filled by forward / get_assignments during a training step only
        self._step_outs: Optional[List[Dict[str, Any]]] = None
        self._step_codes: List[torch.Tensor] = []

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Adds the add-on's defaults to SwAV's and checks every CA setting.

        Args:
            cfg (omegaconf.DictConfig): DictConfig object.

        Returns:
            omegaconf.DictConfig: same as the argument, used to avoid errors.
        """
        cfg = super(SwAVSCACA, SwAVSCACA).add_and_assert_specific_cfg(cfg)

        unknown = [k for k in cfg.method_kwargs if k.startswith("ca_") and k not in CA_KEYS]
        if unknown:
            raise ValueError(
                f"unknown method_kwargs {unknown} for swav_scaca: allowed CA keys are {CA_KEYS}"
            )
        check_backbone(cfg.backbone.name)

        kwargs = cfg.method_kwargs
        for key, (default, allowed) in CA_CHOICES.items():
            kwargs[key] = omegaconf_select(cfg, f"method_kwargs.{key}", default)
            if kwargs[key] not in allowed:
                raise ValueError(
                    f"method_kwargs.{key}={kwargs[key]!r} is invalid: allowed values are {allowed}"
                )
        kwargs.ca_weight = omegaconf_select(cfg, "method_kwargs.ca_weight", 1.0)
        kwargs.ca_dim = omegaconf_select(cfg, "method_kwargs.ca_dim", 128)
        kwargs.ca_attn_temperature = omegaconf_select(
            cfg, "method_kwargs.ca_attn_temperature", 0.1
        )
        kwargs.ca_mask_temperature = omegaconf_select(
            cfg, "method_kwargs.ca_mask_temperature", 0.1
        )
        kwargs.ca_partner_weight = omegaconf_select(cfg, "method_kwargs.ca_partner_weight", 0.0)
        kwargs.ca_warmup_epochs = omegaconf_select(
            cfg, "method_kwargs.ca_warmup_epochs", kwargs.freeze_prototypes_epochs
        )

        kwargs.ca_gather_partners = omegaconf_select(
            cfg, "method_kwargs.ca_gather_partners", False
        )

        if not isinstance(kwargs.ca_gather_partners, bool):
            raise ValueError(
                f"method_kwargs.ca_gather_partners={kwargs.ca_gather_partners!r} is invalid: "
                "allowed values are True and False"
            )
        _check_number(cfg, "ca_weight", 0, strict=False, integer=False)
        _check_number(cfg, "ca_dim", 0, strict=True, integer=True)
        _check_number(cfg, "ca_attn_temperature", 0, strict=True, integer=False)
        _check_number(cfg, "ca_mask_temperature", 0, strict=True, integer=False)
        _check_number(cfg, "ca_partner_weight", 0, strict=False, integer=False)
        _check_number(cfg, "ca_warmup_epochs", 0, strict=False, integer=False)

        batch_size = cfg.optimizer.batch_size
        if not isinstance(batch_size, int) or batch_size < 2:
            raise ValueError(
                f"optimizer.batch_size={batch_size!r} is invalid for swav_scaca: it pairs "
                "images within each process's batch, so allowed values are integers >= 2"
            )
        return cfg

    @property
    def learnable_params(self) -> List[dict]:
        """Adds the add-on's parameters to SwAV's learnable parameters."""
        extra = [] if self.ca_head is None else [
            {"name": "ca_head", "params": self.ca_head.parameters()}
        ]
        return super().learnable_params + extra

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Makes room for a saved SwAV queue before the weights load.

        The host's SwAV creates its queue only in ``on_train_start``, after Lightning has
        restored the checkpoint, so a saved queue is an unexpected key and resuming fails.
        """
        queue = checkpoint["state_dict"].get("queue")
        if queue is not None:
            self.register_buffer("queue", torch.zeros_like(queue, device=self.device))

    def on_train_epoch_start(self) -> None:
        """Seeds torch for the epoch from the run's seed and the epoch number, so that an epoch
        draws the same data order, augmentations and random partners whether the run went on
        or resumed from the previous epoch's checkpoint (after a kill, say)."""
        super().on_train_epoch_start()
        torch.manual_seed((self.run_seed * 1_000_003 + self.current_epoch) % 2**63)

    def on_train_start(self):
        """SwAV's set-up, keeping a queue restored from a checkpoint (the host zeroes it)."""
        restored = self._buffers.get("queue")
        super().on_train_start()
        if restored is not None and restored.shape == self.queue.shape:
            self.queue.copy_(restored)

    def forward(self, X: torch.Tensor) -> Dict[str, Any]:
        """SwAV's forward pass, plus the backbone's spatial map ``fmap`` (B x C x H x W)."""
        with self.spatial_map_hook.capture() as hook:
            out = super().forward(X)
        out["fmap"] = hook.fmap
        if self._step_outs is not None:
            self._step_outs.append(out)
        return out

    @torch.no_grad()
    def get_assignments(self, preds: List[torch.Tensor]) -> List[torch.Tensor]:
        """SwAV's Sinkhorn codes, kept for the add-on's pairing and loss."""
        self._step_codes = super().get_assignments(preds)
        return self._step_codes

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
        codes: List[torch.Tensor],
        partner_codes: List[torch.Tensor],
        labels: Optional[torch.Tensor],
        partner_labels: Optional[List[torch.Tensor]],
    ) -> None:
        """Logs whether the mask attends and depends on the partner (docs/method.md section 6) as
        ``train_ca_*``; the same-class share only with ``partner_labels`` (real labels)."""
        same_prototype = torch.stack([
            same_share(q.argmax(dim=1), p.argmax(dim=1)) for q, p in zip(codes, partner_codes)
        ]).mean()
        same_class = None
        if partner_labels is not None:
            same_class = torch.stack([same_share(labels, p) for p in partner_labels]).mean()
        metrics = mechanism_metrics(masks, probe_masks, same_prototype, same_class)
        # diagnostics: no all-reduce per step under DDP (each process logs its own batch)
        for name, value in metrics.items():
            self.log(f"train_{name}", value, on_epoch=True)

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """SwAV's training step (unchanged) plus ``lambda * L_ca`` on the large crops.

        The host's step consumes the per-crop outputs; the large crops' outputs and the codes
        are kept as ``forward`` and ``get_assignments`` produce them.
        """
        self._step_outs = []
        try:
            loss = super().training_step(batch, batch_idx)
            outs, codes = self._step_outs[: self.num_large_crops], self._step_codes
        finally:  # never leave the side channel open, even when the host's step raised
            self._step_outs, self._step_codes = None, []
        fmaps = [out["fmap"] for out in outs]
        if self.ca_head is None:
            return loss
        if fmaps[0].size(0) < 2 and (
            self.ca_pairing != "self" or self.ca_head.response == "contrast"
        ):
            rank_zero_warn(
                f"swav_scaca: a batch of {fmaps[0].size(0)} image cannot be paired "
                f"(ca_pairing={self.ca_pairing!r}, ca_response={self.ca_head.response!r}); "
                "the CA term is skipped for this step"
            )
            return loss

        z = [out["z"] for out in outs]
        labels = batch[-1] if torch.is_tensor(batch[-1]) else None
        candidate_codes, candidate_z, candidate_labels = codes, z, labels
        offset, gather = 0, None
        if self.ca_gather_partners and get_world_size() > 1:
            candidate_codes = [concat_all_gather_no_grad(q) for q in codes]
            candidate_z = [concat_all_gather_no_grad(v) for v in z]
            candidate_labels = None if labels is None else concat_all_gather_no_grad(labels)
            offset, gather = get_rank() * len(fmaps[0]), all_gather_with_grad
        partners = select_partners(
            self.ca_pairing, codes, z, candidate_codes, candidate_z, offset
        )
        # a random other image per view: the probe partners of the partner-sensitivity metric
        # and, drawn independently, the negatives of ca_response=contrast
        batch_size, num_candidates = len(fmaps[0]), len(candidate_codes[0])

        def draw_randoms():
            return [(v, random_partners(batch_size, num_candidates, fmaps[0].device, offset))
                    for v in range(len(fmaps))] if num_candidates > 1 else None

        probes = draw_randoms()
        negatives = draw_randoms() if self.ca_head.response == "contrast" else None
        ca = self.ca_head(fmaps, partners, gather, negatives=negatives, probes=probes)
        masked_feats = [self.spatial_map_hook.feature_head(f) for f in ca.feats]
        masked_preds = [self.prototypes(F.normalize(self.projector(f))) for f in masked_feats]
        partner_codes = [candidate_codes[view][index] for view, index in partners]
        # one check of the candidates' labels (a device sync), not one per view
        partner_labels = ([candidate_labels[index] for _, index in partners]
                          if labels_are_real(candidate_labels) else None)
        self.log_mechanism_metrics(ca.masks, ca.probe_masks, codes, partner_codes, labels,
                                   partner_labels)
        ca_loss = ca_loss_func(
            masked_preds, codes, self.temperature, partner_codes, self.ca_partner_weight
        )
        if not torch.isfinite(ca_loss):
            raise FloatingPointError(
                f"swav_scaca: the CA loss is {ca_loss.item()} at epoch {self.current_epoch}, "
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
