"""Spatial cross-attention mask between an image and its partner (METHOD.md section 2).

The add-on's only learnable part: 1x1 projections ``phi_q`` and ``phi_k``. It lives outside the
backbone, so dropping it for inference changes no backbone weight.
"""

from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def cross_correlation_mask(
    queries: torch.Tensor,
    keys: torch.Tensor,
    attn_temperature: float,
    mask_temperature: float,
) -> torch.Tensor:
    """Spatial mask over the query image's locations, high where it matches its partner.

    Args:
        queries: B x d x U, L2-normalised over d (U locations of image i).
        keys: B x d x W, L2-normalised over d (W locations of i's partner).
        attn_temperature: tau_a of the soft max over the partner's locations.
        mask_temperature: tau_m of the softmax over the query's locations.

    Returns:
        B x U mask; each row is a distribution over the query's locations.
    """
    sim = torch.bmm(queries.transpose(1, 2).float(), keys.float())  # B x U x W
    response = torch.logsumexp(sim / attn_temperature, dim=2) * attn_temperature
    return torch.softmax(response / mask_temperature, dim=1)


def masked_pool(fmap: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_u mask(u) F(u)``: B x C x H x W and B x HW give B x C (GAP for a uniform mask)."""
    return torch.bmm(fmap.flatten(2), mask.to(fmap.dtype).unsqueeze(2)).squeeze(2)


class SpatialCrossAttention(nn.Module):
    def __init__(
        self,
        in_dim: int,
        ca_dim: int = 128,
        attn_temperature: float = 0.1,
        mask_temperature: float = 0.1,
    ):
        """Cross-attention between the spatial maps of paired images.

        Args:
            in_dim: channels C of the backbone's spatial map.
            ca_dim: dimension d of the query/key projections.
            attn_temperature: tau_a (soft max over the partner's locations).
            mask_temperature: tau_m (softmax over the image's own locations).
        """
        super().__init__()
        self.phi_q = nn.Conv2d(in_dim, ca_dim, kernel_size=1)
        self.phi_k = nn.Conv2d(in_dim, ca_dim, kernel_size=1)
        self.attn_temperature = attn_temperature
        self.mask_temperature = mask_temperature

    def forward(
        self,
        fmaps: Sequence[torch.Tensor],
        partners: Sequence[Tuple[int, torch.Tensor]],
        gather: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Masks every view's spatial map with its cross-correlation to the partners' maps.

        Args:
            fmaps: per view, the backbone's spatial map F_v (B x C x H x W).
            partners: per view, ``(partner_view, partner_index)`` from ``select_partners``.
            gather: when partners come from every process, gathers the keys of all
                processes (with gradient), in the order the partner indices use.

        Returns:
            per view, the masked features (B x C) and the masks (B x H x W).
        """
        queries = [F.normalize(self.phi_q(f).flatten(2), dim=1) for f in fmaps]
        keys = [F.normalize(self.phi_k(f).flatten(2), dim=1) for f in fmaps]
        if gather is not None:
            keys = [gather(k) for k in keys]
        feats, masks = [], []
        for fmap, q, (view, index) in zip(fmaps, queries, partners):
            mask = cross_correlation_mask(
                q, keys[view][index], self.attn_temperature, self.mask_temperature
            )
            feats.append(masked_pool(fmap, mask))
            masks.append(mask.view(fmap.size(0), *fmap.shape[2:]))
        return feats, masks
