"""Cross-attention loss terms that are not a host loss function called as is (docs/method.md
sections 3 and 9), pure functions: swav_scaca's and simclr_scaca's."""

from typing import List, Optional

import torch
import torch.nn.functional as F
from solo.losses.swav import swav_loss_func
from solo.utils.misc import gather, get_rank


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


def simclr_ca_loss_func(
    masked_z: torch.Tensor, z: torch.Tensor, indexes: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """SimCLR's NT-Xent with the masked large crops as anchors (docs/method.md section 9).

    Anchor ``i`` of view ``v`` (row ``v * B + i`` of ``masked_z``) scores its positives, the
    other crops of the same image, against its negatives, the crops of every other image of
    every process, as the host's ``simclr_loss_func`` scores the unmasked crop ``v * B + i`` of
    ``z``; that crop itself is neither.

    Args:
        masked_z: (V*B) x D projections of the masked large crops, views stacked.
        z: (N*B) x D projections of all crops, large ones first (the host's order).
        indexes: N*B image indexes of the rows of ``z``.
        temperature: SimCLR's temperature.

    Returns:
        the scalar CA loss.
    """
    anchors = F.normalize(masked_z, dim=-1)
    gathered_z = gather(F.normalize(z, dim=-1))
    gathered_indexes = gather(indexes)
    sim = torch.exp(anchors @ gathered_z.t() / temperature)
    same = indexes[: len(masked_z)].unsqueeze(1) == gathered_indexes.unsqueeze(0)
    own = torch.arange(len(masked_z), device=z.device) + len(z) * get_rank()
    pos_mask = same.scatter(1, own.unsqueeze(1), False)
    pos = torch.sum(sim * pos_mask, 1)
    neg = torch.sum(sim * ~same, 1)
    return -torch.mean(torch.log(pos / (pos + neg)))
