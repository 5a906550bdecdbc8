"""BYOL with the spatial cross-attention add-on (``method=byol_scaca``, docs/method.md section 9).

Subclasses the host's BYOL: ``L_ca`` is BYOL's loss with the predictions of the masked large
crops in place of the online predictions, against the momentum projections of the other views.
BYOL has no codes, so images pair by the cosine of their projections (``nn``) by default.
"""

from typing import Any, List, Optional, Sequence

import torch
from solo.losses.byol import byol_loss_func
from solo.methods.byol import BYOL

from solo_scaca.addon.config import CA_SCHEMA, Choice
from solo_scaca.addon.method_addon import MomentumAddon


class BYOLSCACA(MomentumAddon, BYOL):
    NAME = "byol_scaca"
    CA_SCHEMA = {**CA_SCHEMA, "ca_pairing": Choice("nn", ("nn", "self", "random"))}

    def ca_head_outputs(self, feats: torch.Tensor) -> torch.Tensor:
        """h = predictor . projector."""
        return self.predictor(self.projector(feats))

    def ca_targets(self, batch: Sequence[Any]) -> List[torch.Tensor]:
        """The momentum projections of the large crops (no gradient, as BYOL's)."""
        return self._step_momentum_z

    @torch.no_grad()
    def ca_targets_of(self, feats: List[torch.Tensor], targets: List[torch.Tensor]
                      ) -> List[torch.Tensor]:
        """The momentum projector on the pooled (online) features."""
        return [self.momentum_projector(f) for f in feats]

    def ca_loss(self, masked_outputs: List[torch.Tensor], targets: List[torch.Tensor],
                batch: Sequence[Any], partner_codes: Optional[List[torch.Tensor]]) -> torch.Tensor:
        """BYOL's sum over (target view, other large crop) of the negative cosine similarity."""
        return sum(
            byol_loss_func(masked_outputs[v2], targets[v1])
            for v1 in range(len(targets)) for v2 in range(len(masked_outputs)) if v2 != v1
        )
