"""SimCLR with the spatial cross-attention add-on (``method=simclr_scaca``, docs/method.md
section 9).

Subclasses the host's SimCLR: ``L_ca`` is its NT-Xent with the projections of the masked large
crops as anchors, the other views of the same image as positives and every other image of the
(gathered) batch as negatives, as the host's loss has them. SimCLR detaches nothing, so neither
does ``L_ca``. SimCLR has no codes, so images pair by the cosine of their projections (``nn``).
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import omegaconf
import torch
from solo.methods.simclr import SimCLR

from solo_scaca.addon.losses import simclr_ca_loss_func
from solo_scaca.addon.config import CA_SCHEMA, Choice
from solo_scaca.addon.method_addon import CrossAttentionAddon

Targets = Tuple[torch.Tensor, torch.Tensor]  # z of every crop (large first), their indexes


class SimCLRSCACA(CrossAttentionAddon, SimCLR):
    NAME = "simclr_scaca"
    CA_SCHEMA = {**CA_SCHEMA, "ca_pairing": Choice("nn", ("nn", "self", "random"))}

    def __init__(self, cfg: omegaconf.DictConfig):
        super().__init__(cfg)
        self._step_small_z: List[torch.Tensor] = []

    def multicrop_forward(self, X: torch.Tensor) -> Dict[str, Any]:
        """The host's small-crop forward pass, its ``z`` kept (negatives) during a step."""
        return self.ca_keep_z(self._step_small_z, super().multicrop_forward(X))

    def ca_reset_step(self) -> None:
        self._step_small_z = []

    def ca_head_outputs(self, feats: torch.Tensor) -> torch.Tensor:
        """h = projector."""
        return self.projector(feats)

    def ca_targets(self, batch: Sequence[Any]) -> Targets:
        """The projections of every crop, in the host's order, and their image indexes."""
        large = [out["z"] for out in self._step_outs[: self.num_large_crops]]
        z = torch.cat(large + self._step_small_z)
        return z, batch[0].repeat(self.num_large_crops + len(self._step_small_z))

    @torch.no_grad()
    def ca_targets_of(self, feats: List[torch.Tensor], targets: Targets) -> Targets:
        """The large crops' projections replaced by those of the pooled features (the small
        crops' stay: negatives)."""
        z, indexes = targets
        large = sum(len(f) for f in feats)
        return torch.cat([self.projector(f) for f in feats] + [z[large:]]), indexes

    def ca_loss(self, masked_outputs: List[torch.Tensor], targets: Targets,
                batch: Sequence[Any], partner_codes: Optional[List[torch.Tensor]]) -> torch.Tensor:
        z, indexes = targets
        return simclr_ca_loss_func(torch.cat(masked_outputs), z, indexes, self.temperature)
