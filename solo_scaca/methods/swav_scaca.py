"""SwAV with the spatial cross-attention add-on (``method=swav_scaca``, docs/method.md).

Subclasses the host's SwAV: its projector, prototypes, queue, Sinkhorn and loss run unchanged;
the add-on adds a masked branch on the large crops whose prototype scores predict the other
views' codes (``L_ca``).
"""

from typing import Any, Dict, List, Optional, Sequence

import omegaconf
import torch
import torch.nn.functional as F
from solo.methods.swav import SwAV
from solo.utils.sinkhorn_knopp import SinkhornKnopp

from solo_scaca.addon.config import CA_SCHEMA, Number
from solo_scaca.addon.losses import ca_loss_func
from solo_scaca.addon.method_addon import CrossAttentionAddon


class SwAVSCACA(CrossAttentionAddon, SwAV):
    NAME = "swav_scaca"
    CA_SCHEMA = {
        **CA_SCHEMA,
        # the CA weight ramps up while SwAV's prototypes are frozen
        "ca_warmup_epochs": Number(lambda cfg: cfg.method_kwargs.freeze_prototypes_epochs),
        "ca_partner_weight": Number(0.0),
    }
    LATE_BUFFERS = ("queue",)

    def __init__(self, cfg: omegaconf.DictConfig):
        """Implements SwAV + spatial cross-attention (https://arxiv.org/abs/2206.05028).

        Extra cfg settings (besides SwAV's; the add-on's keys are in docs/method.md):
            method_kwargs:
                ca_pairing (str): prototype (default: shared code argmax), nn, self or random.
                ca_partner_weight (float): weight of the masked branch's loss against the
                    partner's codes.
                ca_warmup_epochs (float): default freeze_prototypes_epochs.
        """
        super().__init__(cfg)
        self.ca_partner_weight: float = cfg.method_kwargs.ca_partner_weight
        self._step_codes: List[torch.Tensor] = []

    @torch.no_grad()
    def get_assignments(self, preds: List[torch.Tensor]) -> List[torch.Tensor]:
        """SwAV's Sinkhorn codes, kept for the add-on's pairing and loss."""
        self._step_codes = super().get_assignments(preds)
        return self._step_codes

    def ca_reset_step(self) -> None:
        self._step_codes = []

    def ca_head_outputs(self, feats: torch.Tensor) -> torch.Tensor:
        """h = prototypes . normalize . projector."""
        return self.prototypes(F.normalize(self.projector(feats)))

    def ca_targets(self, batch: Sequence[Any]) -> List[torch.Tensor]:
        """The Sinkhorn codes of the large crops, as the host's step computed them."""
        return self._step_codes

    @torch.no_grad()
    def ca_targets_of(self, feats: List[torch.Tensor], targets: List[torch.Tensor]
                      ) -> List[torch.Tensor]:
        """Sinkhorn codes of the pooled features' prototype scores (this batch, no queue)."""
        return [self.sk(self.ca_head_outputs(f)) for f in feats]

    def ca_codes(self, targets: List[torch.Tensor], outs: List[Dict[str, Any]]
                 ) -> List[torch.Tensor]:
        """Pairing by the Sinkhorn codes themselves."""
        return targets

    @torch.no_grad()
    def ca_inference_codes(self, images: torch.Tensor, out: Dict[str, Any]) -> torch.Tensor:
        """The batch's Sinkhorn codes, as in training (one process, no queue)."""
        return SinkhornKnopp(self.sk_iters, self.sk_epsilon, 1)(out["p"])

    def ca_loss(self, masked_outputs: List[torch.Tensor], targets: List[torch.Tensor],
                batch: Sequence[Any], partner_codes: Optional[List[torch.Tensor]]) -> torch.Tensor:
        """SwAV's swapped prediction on the masked branch (plus the optional partner term)."""
        return ca_loss_func(
            masked_outputs, targets, self.temperature, partner_codes, self.ca_partner_weight
        )
