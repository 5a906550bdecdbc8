"""The cross-attention loss term of swav_scaca (docs/method.md section 3), a pure function."""

from typing import List, Optional

import torch
from solo.losses.swav import swav_loss_func


def ca_loss_func(
    masked_preds: List[torch.Tensor],
    codes: List[torch.Tensor],
    temperature: float = 0.1,
    partner_codes: Optional[List[torch.Tensor]] = None,
    partner_weight: float = 0.0,
) -> torch.Tensor:
    """SwAV's swapped prediction on the masked branch, plus an optional partner term.

    The masked prediction of view v is scored against the codes of the other views of the same
    image, exactly as the host's ``swav_loss_func`` scores the unmasked ones; with
    ``partner_weight > 0`` it is also scored against the codes of its partner.

    Args:
        masked_preds: per large crop, the prototype scores of the masked features (B x K).
        codes: per large crop, the Sinkhorn codes (B x K; the host calls them assignments).
        temperature: SwAV's softmax temperature.
        partner_codes: per large crop, the codes of each image's partner (B x K).
        partner_weight: weight of the partner term.

    Returns:
        the scalar CA loss.
    """
    loss = swav_loss_func(masked_preds, codes, temperature)
    if partner_weight > 0:
        if partner_codes is None:
            raise ValueError("partner_weight > 0 needs partner_codes")
        partner = [
            -torch.sum(q * torch.log_softmax(p / temperature, dim=1), dim=1).mean()
            for p, q in zip(masked_preds, partner_codes)
        ]
        loss = loss + partner_weight * sum(partner) / len(partner)
    return loss
