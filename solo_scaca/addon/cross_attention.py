"""Spatial cross-attention mask between an image and its partner (docs/method.md sections 2 and 6).

The add-on's only learnable part: 1x1 projections ``phi_q`` and ``phi_k`` (none with
``keys="features"`` or ``mask="uniform"``). It lives outside the backbone, so dropping it for
inference changes no backbone weight.
"""

from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

MASK_MODES = ("cross", "uniform")
KEY_MODES = ("learned", "features")
RESPONSE_MODES = ("logsumexp", "mean", "contrast")

Partners = Sequence[Tuple[int, torch.Tensor]]


def location_response(
    queries: torch.Tensor, keys: torch.Tensor, attn_temperature: float, response: str = "logsumexp"
) -> torch.Tensor:
    """How well each location of the query image matches its partner: B x U.

    ``logsumexp``: ``tau_a logsumexp_w S(u, w) / tau_a``, a soft max over the partner's W
    locations (docs/method.md section 2). ``mean``: the mean of ``S(u, w)`` over w: a location
    scores high only when it matches much of the partner, not just one of its locations.
    ``contrast`` is ``logsumexp`` minus the same response to a negative image; it is computed
    by ``cross_correlation_mask``.
    """
    sim = torch.bmm(queries.transpose(1, 2).float(), keys.float())  # B x U x W
    if response == "mean":
        return sim.mean(dim=2)
    return torch.logsumexp(sim / attn_temperature, dim=2) * attn_temperature


def cross_correlation_mask(
    queries: torch.Tensor,
    keys: torch.Tensor,
    attn_temperature: float,
    mask_temperature: float,
    response: str = "logsumexp",
    negative_keys: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Spatial mask over the query image's locations, high where it matches its partner.

    Args:
        queries: B x d x U, L2-normalised over d (U locations of image i).
        keys: B x d x W, L2-normalised over d (W locations of i's partner).
        attn_temperature: tau_a of the soft max over the partner's locations.
        mask_temperature: tau_m of the softmax over the query's locations.
        response: one of ``RESPONSE_MODES``.
        negative_keys: B x d x W keys of a negative image (``response="contrast"``): the mask
            follows what i shares with its partner beyond what it shares with any image.

    Returns:
        B x U mask; each row is a distribution over the query's locations.
    """
    if response == "contrast":
        if negative_keys is None:
            raise ValueError("response='contrast' needs negative_keys")
        r = location_response(queries, keys, attn_temperature) - location_response(
            queries, negative_keys, attn_temperature
        )
    else:
        r = location_response(queries, keys, attn_temperature, response)
    return torch.softmax(r / mask_temperature, dim=1)


def masked_pool(fmap: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_u mask(u) F(u)``: B x C x H x W and B x HW give B x C (GAP for a uniform mask)."""
    return torch.bmm(fmap.flatten(2), mask.to(fmap.dtype).unsqueeze(2)).squeeze(2)


class CrossAttentionOutput(NamedTuple):
    feats: List[torch.Tensor]  # per view, the masked features (B x C)
    masks: List[torch.Tensor]  # per view, the masks (B x H x W)
    probe_masks: List[torch.Tensor]  # per view, masks with the probe partners (no gradient)


class SpatialCrossAttention(nn.Module):
    def __init__(
        self,
        in_dim: int,
        ca_dim: int = 128,
        attn_temperature: float = 0.1,
        mask_temperature: float = 0.1,
        mask: str = "cross",
        keys: str = "learned",
        response: str = "logsumexp",
    ):
        """Cross-attention between the spatial maps of paired images.

        Args:
            in_dim: channels C of the backbone's spatial map.
            ca_dim: dimension d of the query/key projections (``keys="learned"``).
            attn_temperature: tau_a (soft max over the partner's locations).
            mask_temperature: tau_m (softmax over the image's own locations).
            mask: ``cross``, or ``uniform`` (1/HW: the masked feature is GAP, the extra-loss
                control of docs/method.md section 6).
            keys: ``learned`` (``phi_q``, ``phi_k``), or ``features`` (Q = K = the backbone's
                map L2-normalised over channels: the raw spatial cross-correlation).
            response: one of ``RESPONSE_MODES`` (see ``location_response``).
        """
        super().__init__()
        for name, value, allowed in (
            ("mask", mask, MASK_MODES), ("keys", keys, KEY_MODES),
            ("response", response, RESPONSE_MODES),
        ):
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is invalid: allowed values are {allowed}")
        learned = mask == "cross" and keys == "learned"
        self.phi_q = nn.Conv2d(in_dim, ca_dim, kernel_size=1) if learned else None
        self.phi_k = nn.Conv2d(in_dim, ca_dim, kernel_size=1) if learned else None
        self.attn_temperature = attn_temperature
        self.mask_temperature = mask_temperature
        self.mask, self.keys, self.response = mask, keys, response

    def _project(self, layer: Optional[nn.Module], fmap: torch.Tensor) -> torch.Tensor:
        return F.normalize((fmap if layer is None else layer(fmap)).flatten(2), dim=1)

    def _masks(self, queries, keys, partners: Partners, negatives: Optional[Partners]):
        out = []
        for v, (q, (view, index)) in enumerate(zip(queries, partners)):
            negative = None
            if negatives is not None:
                neg_view, neg_index = negatives[v]
                negative = keys[neg_view][neg_index]
            out.append(cross_correlation_mask(
                q, keys[view][index], self.attn_temperature, self.mask_temperature,
                self.response, negative,
            ))
        return out

    def forward(
        self,
        fmaps: Sequence[torch.Tensor],
        partners: Partners,
        gather: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        negatives: Optional[Partners] = None,
        probes: Optional[Partners] = None,
    ) -> CrossAttentionOutput:
        """Masks every view's spatial map with its cross-correlation to the partners' maps.

        Args:
            fmaps: per view, the backbone's spatial map F_v (B x C x H x W).
            partners: per view, ``(partner_view, partner_index)`` from ``select_partners``.
            gather: when partners come from every process, gathers the keys of all
                processes (with gradient), in the order the partner indices use.
            negatives: per view, the negative images of ``response="contrast"``, as partners.
            probes: per view, other partners whose masks are computed without gradient, for
                the mechanism metrics (does the mask depend on the partner?).

        Returns:
            per view, the masked features (B x C), the masks (B x H x W) and the probe masks.
        """
        batch, grid = fmaps[0].size(0), fmaps[0].shape[2:]
        if self.mask == "uniform":
            uniform = [torch.full((f.size(0), *grid), 1 / grid.numel(), device=f.device)
                       for f in fmaps]
            return CrossAttentionOutput([f.mean(dim=(2, 3)) for f in fmaps], uniform,
                                        uniform if probes is not None else [])
        if self.response == "contrast" and negatives is None:
            raise ValueError("response='contrast' needs negatives")
        queries = [self._project(self.phi_q, f) for f in fmaps]
        keys = [self._project(self.phi_k, f) for f in fmaps]
        if gather is not None:
            keys = [gather(k) for k in keys]
        masks = self._masks(queries, keys, partners, negatives)
        feats = [masked_pool(f, m) for f, m in zip(fmaps, masks)]
        probe_masks = []
        if probes is not None:
            with torch.no_grad():
                probe_masks = [m.view(batch, *grid) for m in self._masks(
                    [q.detach() for q in queries], [k.detach() for k in keys], probes, negatives
                )]
        return CrossAttentionOutput(feats, [m.view(batch, *grid) for m in masks], probe_masks)
