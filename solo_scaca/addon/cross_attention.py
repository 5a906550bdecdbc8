"""Spatial cross-attention mask between an image and its partner (docs/method.md sections 2 and 6),
and the masked features each CA objective trains on (``objective``, docs/method.md section 10).

The add-on's only learnable part: 1x1 projections ``phi_q`` and ``phi_k`` (none with
``keys="features"``, ``mask="uniform"`` or ``objective="fixed"``). It lives outside the
backbone, so dropping it for inference changes no backbone weight.
"""

from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from solo_scaca.addon import objectives as obj

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
    masks: List[torch.Tensor]  # per view, the masks (B x H x W; ``attend``: over the partner's)
    probe_masks: List[torch.Tensor]  # per view, masks with the probe partners (no gradient)
    # ``co``: per view, each partner's feature masked by its own co-attention mask (B x C)
    partner_feats: List[torch.Tensor] = []
    # ``complement``: per view, what the mask leaves out, pooled from the detached map (B x C),
    # and the soft mask's area (B)
    background: List[torch.Tensor] = []
    area: List[torch.Tensor] = []


class Pooled(NamedTuple):
    """One view's result of an objective's pooling."""

    feat: torch.Tensor
    mask: torch.Tensor  # B x U, a distribution
    partner_feat: Optional[torch.Tensor] = None
    background: Optional[torch.Tensor] = None
    area: Optional[torch.Tensor] = None


# the objectives that read the partner's map itself (the rest read only its keys)
PARTNER_MAPS = ("co", "fixed", "attend")

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
        objective: str = "self",
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
            objective: one of ``objectives.OBJECTIVES``: how the masked features are made
                (``co``: both images masked; ``complement``: a soft mask and what it leaves
                out; ``fixed``: mutual nearest neighbours, no learned projections; ``attend``:
                the image rebuilt from its partner's attended locations).
        """
        super().__init__()
        for name, value, allowed in (
            ("mask", mask, MASK_MODES), ("keys", keys, KEY_MODES),
            ("response", response, RESPONSE_MODES), ("objective", objective, obj.OBJECTIVES),
        ):
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is invalid: allowed values are {allowed}")
        if response == "contrast" and objective not in ("self", "self_masked"):
            raise ValueError(f"response='contrast' is invalid with objective={objective!r}: "
                             "allowed with objectives 'self' and 'self_masked'")
        learned = mask == "cross" and keys == "learned" and objective != "fixed"
        self.phi_q = nn.Conv2d(in_dim, ca_dim, kernel_size=1) if learned else None
        self.phi_k = nn.Conv2d(in_dim, ca_dim, kernel_size=1) if learned else None
        self.attn_temperature = attn_temperature
        self.mask_temperature = mask_temperature
        self.mask, self.keys, self.response = mask, keys, response
        self.objective = objective

    def _project(self, layer: Optional[nn.Module], fmap: torch.Tensor) -> torch.Tensor:
        return F.normalize((fmap if layer is None else layer(fmap)).flatten(2), dim=1)

    def _pool(self, query: torch.Tensor, key: torch.Tensor, fmap: torch.Tensor,
              partner_fmap: Optional[torch.Tensor],
              negative_key: Optional[torch.Tensor]) -> Pooled:
        """One view: the objective's masked feature of each image given its partner's keys and
        map (``query``/``key``: B x d x U, ``fmap``/``partner_fmap``: B x C x H x W)."""
        tau_a, tau_m = self.attn_temperature, self.mask_temperature
        if self.objective == "co":
            r_i, r_j = obj.co_responses(query, key, tau_a)
            m_i, m_j = torch.softmax(r_i / tau_m, dim=1), torch.softmax(r_j / tau_m, dim=1)
            return Pooled(masked_pool(fmap, m_i), m_i, masked_pool(partner_fmap, m_j))
        if self.objective == "complement":
            soft = obj.complement_mask(location_response(query, key, tau_a, self.response), tau_m)
            return Pooled(obj.weighted_pool(fmap, soft), soft / soft.sum(dim=1, keepdim=True),
                          background=obj.weighted_pool(fmap.detach(), 1 - soft),
                          area=soft.mean(dim=1))
        if self.objective == "fixed":
            m = obj.mutual_nn_mask(fmap, partner_fmap).flatten(1)
            return Pooled(masked_pool(fmap, m), m)
        if self.objective == "attend":
            feat, attn = obj.attend_pool(query, key, partner_fmap, tau_a, tau_m)
            return Pooled(feat, attn)
        m = cross_correlation_mask(query, key, tau_a, tau_m, self.response, negative_key)
        return Pooled(masked_pool(fmap, m), m)

    def _uniform(self, fmaps: Sequence[torch.Tensor], partner_maps, partners: Partners,
                 probes: Optional[Partners]) -> CrossAttentionOutput:
        """Each objective's extra-loss control: every mask uniform (GAP; ``attend``: the
        partner's GAP; ``co``: both GAPs; ``complement``: a flat half mask, so fg = bg)."""
        batch, grid = fmaps[0].size(0), fmaps[0].shape[2:]
        uniform = [torch.full((f.size(0), *grid), 1 / grid.numel(), device=f.device)
                   for f in fmaps]
        gap = [f.mean(dim=(2, 3)) for f in fmaps]
        partner_gap = [partner_maps[view][index].mean(dim=(2, 3)) for view, index in partners
                       ] if self.objective in PARTNER_MAPS else []
        feats = partner_gap if self.objective == "attend" else gap
        out = CrossAttentionOutput(feats, uniform, uniform if probes is not None else [])
        if self.objective == "co":
            out = out._replace(partner_feats=partner_gap)
        if self.objective == "complement":
            out = out._replace(background=[g.detach() for g in gap],
                               area=[torch.full((batch,), 0.5, device=g.device) for g in gap])
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
            gather: when partners come from every process, gathers the keys (and the maps the
                objective pools from partners) of all processes (with gradient), in the order
                the partner indices use.
            negatives: per view, the negative images of ``response="contrast"``, as partners.
            probes: per view, other partners whose masks are computed without gradient, for
                the mechanism metrics (does the mask depend on the partner?).

        Returns:
            per view, the masked features (B x C), the masks (B x H x W), the probe masks and
            the objective's extras (see ``CrossAttentionOutput``).
        """
        batch, grid = fmaps[0].size(0), fmaps[0].shape[2:]
        partner_maps = list(fmaps)  # the partners' maps: only the objectives in PARTNER_MAPS
        if gather is not None and self.objective in PARTNER_MAPS:  # read them
            partner_maps = [gather(f) for f in fmaps]
        if self.mask == "uniform":
            return self._uniform(fmaps, partner_maps, partners, probes)
        if self.response == "contrast" and negatives is None:
            raise ValueError("response='contrast' needs negatives")
        # every view in one call of each op: the views' maps are concatenated along the batch
        views = len(fmaps)
        queries = self._project(self.phi_q, torch.cat(list(fmaps)))  # VB x d x U
        keys = list(self._project(self.phi_k, torch.cat(list(fmaps))).chunk(views))
        if gather is not None:
            keys = [gather(k) for k in keys]
        num_candidates = keys[0].size(0)
        all_keys, all_maps, own_maps = torch.cat(keys), torch.cat(partner_maps), torch.cat(fmaps)

        def flat(pairs: Partners) -> torch.Tensor:  # (view, index) -> row of the concatenation
            return torch.cat([view * num_candidates + index for view, index in pairs])

        def pool_pairs(pairs: Partners) -> Pooled:
            rows = flat(pairs)
            negative = None if negatives is None else all_keys[flat(negatives)]
            partner = all_maps[rows] if self.objective in PARTNER_MAPS else None
            return self._pool(queries, all_keys[rows], own_maps, partner, negative)

        def split(t: Optional[torch.Tensor]) -> List[torch.Tensor]:
            return [] if t is None else list(t.chunk(views))

        pooled = pool_pairs(partners)
        probe_masks = []
        if probes is not None:
            with torch.no_grad():
                probe_masks = [m.view(batch, *grid) for m in split(pool_pairs(probes).mask)]
        masks = [m.view(batch, *grid) for m in split(pooled.mask)]
        return CrossAttentionOutput(split(pooled.feat), masks, probe_masks,
                                    split(pooled.partner_feat), split(pooled.background),
                                    split(pooled.area))
