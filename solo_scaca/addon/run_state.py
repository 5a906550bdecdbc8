"""What a plugin method adds to its host class, shared by the cross-attention add-on and LEWEL:
its own module's parameters, and what makes a run resume exactly and fail loudly (late buffers,
per-epoch seeding, the momentum schedule after a resume, a finite-loss guard). Each is a mixin
listed before the host class."""

from typing import Any, Dict, List, Tuple

import omegaconf
import torch
from solo.utils.misc import omegaconf_select


class AddonParams:
    """Trains the add-on's own module (the attribute named ``ADDON_HEAD``; None when the add-on
    is off) beside the host method's learnable parameters."""

    ADDON_HEAD = ""

    @property
    def learnable_params(self) -> List[dict]:
        head = getattr(self, self.ADDON_HEAD, None)
        extra = [] if head is None else [{"name": self.ADDON_HEAD, "params": head.parameters()}]
        return super().learnable_params + extra


class LateBuffers:
    """Buffers the host creates in ``on_train_start`` (after Lightning restored a checkpoint,
    e.g. SwAV's queue): made room for before the weights load, and kept instead of the host's
    fresh ones. A class names them in ``LATE_BUFFERS``."""

    LATE_BUFFERS: Tuple[str, ...] = ()

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        for name in self.LATE_BUFFERS:
            saved = checkpoint["state_dict"].get(name)
            if saved is not None:
                self.register_buffer(name, torch.zeros_like(saved, device=self.device))

    def on_train_start(self) -> None:
        restored = {name: self._buffers.get(name) for name in self.LATE_BUFFERS}
        super().on_train_start()
        for name, value in restored.items():
            current = self._buffers.get(name)
            if value is not None and current is not None and value.shape == current.shape:
                current.copy_(value)


class EpochSeeding:
    """Seeds torch at every epoch start from (run seed, epoch), so that an epoch draws the same
    data order, augmentations and random partners whether the run went on or resumed from the
    previous epoch's checkpoint (Lightning draws random numbers in another order after a
    resume). Seeded before the host's set-up, which may draw too (DeepClusterV2's k-means)."""

    def __init__(self, cfg: omegaconf.DictConfig):
        super().__init__(cfg)
        self.run_seed: int = int(omegaconf_select(cfg, "seed", 0) or 0)

    def on_train_epoch_start(self) -> None:
        torch.manual_seed((self.run_seed * 1_000_003 + self.current_epoch) % 2**63)
        super().on_train_epoch_start()


class MomentumResume:
    """On a resumed run, the momentum tau where its schedule stands (the host restarts it at
    ``base_tau`` until the first step ends)."""

    def on_train_start(self) -> None:
        super().on_train_start()
        if self.trainer.global_step > 0:
            self.momentum_updater.update_tau(
                cur_step=self.trainer.global_step,
                max_steps=self.trainer.estimated_stepping_batches,
            )


def check_finite(model: Any, name: str, loss: torch.Tensor, batch_idx: int, hint: str) -> None:
    """Stops training with a message saying where the loss ``name`` stopped being finite (the
    checkpoints written so far stay)."""
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"{model.NAME}: the {name} is {loss.item()} at epoch {model.current_epoch}, global "
            f"step {model.global_step} (batch {batch_idx}); training stopped and the "
            f"checkpoints written so far are kept. {hint}"
        )
