"""Pieces of the CA objectives in which the uniform mask is not optimal (docs/method.md,
"Objectives"), pure functions on spatial maps and masks.

``self`` scores the masked feature against codes of the other view's *whole* image: global
pooling reproduces those best, so a learned mask drifts to uniform. The other objectives make
looking somewhere pay: the target moves with the mask (``self_masked``, ``co``), what the mask
leaves out is penalised (``complement``), the mask is not learned by that gradient (``fixed``),
or the partner's parts that match the image are what is pooled (``attend``).
"""

from contextlib import contextmanager
from typing import Iterator, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

OBJECTIVES = ("self", "self_masked", "co", "complement", "fixed", "attend")


def soft_cross_entropy(targets: torch.Tensor, logits: torch.Tensor,
                       temperature: float) -> torch.Tensor:
    """B: ``-sum_k q_k log softmax(p / tau)_k``, SwAV's swapped-prediction term per image."""
    return -(targets * F.log_softmax(logits / temperature, dim=1)).sum(dim=1)


def weighted_pool(fmap: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """B x C: ``sum_u w(u) F(u) / sum_u w(u)`` of a B x C x H x W map and B x H x W (or B x HW)
    non-negative weights: a masked average pooling (GAP for constant weights)."""
    w = weights.reshape(weights.size(0), -1).to(fmap.dtype)
    pooled = torch.bmm(fmap.flatten(2), w.unsqueeze(2)).squeeze(2)
    return pooled / w.sum(dim=1, keepdim=True).clamp(min=1e-12)


def co_responses(queries: torch.Tensor, keys: torch.Tensor,
                 attn_temperature: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """B x U and B x W: how well each location of i matches its partner j (soft max over j's
    locations) and each location of j matches i (soft max over i's), from one
    ``S = Q_i^T K_j``. Queries B x d x U and keys B x d x W, L2-normalised over d."""
    sim = torch.bmm(queries.transpose(1, 2).float(), keys.float())  # B x U x W
    r_i = torch.logsumexp(sim / attn_temperature, dim=2) * attn_temperature
    r_j = torch.logsumexp(sim / attn_temperature, dim=1) * attn_temperature
    return r_i, r_j


@torch.no_grad()
def mutual_nn_mask(fmap_i: torch.Tensor, fmap_j: torch.Tensor, floor: float = 0.1) -> torch.Tensor:
    """B x H x W, computed without gradient: the locations u of i whose best match w in j has u
    as its best match in i (mutual nearest neighbours by cosine of the maps), weighted by how
    well they match (the cosine, floored at 0), half of it spread over the 3 x 3 neighbourhood,
    plus a ``floor`` share of uniform mass; sums to 1. It cannot drift to uniform: it is not
    learned."""
    b, _, h, w = fmap_i.shape
    fi = F.normalize(fmap_i.flatten(2).float(), dim=1)
    fj = F.normalize(fmap_j.flatten(2).float(), dim=1)
    sim = torch.bmm(fi.transpose(1, 2), fj)  # B x U x W
    best, best_w = sim.max(dim=2)  # B x U
    best_u = sim.argmax(dim=1)  # B x W
    mutual = torch.gather(best_u, 1, best_w) == torch.arange(h * w, device=sim.device)
    score = (mutual.float() * best.clamp(min=0)).view(b, 1, h, w)
    spread = F.avg_pool2d(score, 3, stride=1, padding=1, count_include_pad=False)
    mask = (0.5 * score + 0.5 * spread).view(b, h * w)
    total = mask.sum(dim=1, keepdim=True)
    mask = torch.where(total > 0, mask / total.clamp(min=1e-12), torch.full_like(mask, 1 / (h * w)))
    return ((1 - floor) * mask + floor / (h * w)).view(b, h, w)


def attend_pool(queries: torch.Tensor, keys: torch.Tensor, fmap_j: torch.Tensor,
                attn_temperature: float,
                mask_temperature: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Image i rebuilt from its partner j's parts: each location u of i attends over j's
    locations, ``a(u, w) = softmax_w S(u, w) / tau_a``; the attended values ``sum_w a(u, w)
    F_j(w)`` are pooled over u with i's cross-attention mask ``softmax_u r(u) / tau_m`` (so the
    parts of i that match j choose what is taken from j, not i's clutter). Returns the B x C
    feature and where in j it looked (B x W, a distribution). A uniform ``a`` gives GAP(F_j)."""
    sim = torch.bmm(queries.transpose(1, 2).float(), keys.float())  # B x U x W
    response = torch.logsumexp(sim / attn_temperature, dim=2) * attn_temperature
    weights = torch.softmax(response / mask_temperature, dim=1)  # B x U
    attn = torch.bmm(weights.unsqueeze(1), torch.softmax(sim / attn_temperature, dim=2))
    attn = attn.squeeze(1)  # B x W
    return weighted_pool(fmap_j, attn), attn


def complement_mask(response: torch.Tensor, mask_temperature: float,
                    bias: float = 0.0) -> torch.Tensor:
    """B x U soft foreground mask in (0, 1): ``sigmoid((r(u) - mean_u r) / tau_m + b)``."""
    centred = response - response.mean(dim=1, keepdim=True)
    return torch.sigmoid(centred / mask_temperature + bias)


def background_penalty(bg_logits: torch.Tensor, targets: torch.Tensor,
                       temperature: float) -> torch.Tensor:
    """B: ``-log(1 - p_bg(k*))``, k* the target code's argmax: what the mask leaves out must not
    predict the image's code (bounded below by 0, unlike ``log p``)."""
    p = F.softmax(bg_logits / temperature, dim=1)
    k = targets.argmax(dim=1, keepdim=True)
    return -torch.log1p(-p.gather(1, k).squeeze(1).clamp(max=1 - 1e-6))


def area_penalty(area: torch.Tensor) -> torch.Tensor:
    """``1 / sin(pi * area) - 1`` of soft masks' areas (0 at half the image, large near an empty
    or full mask): keeps the complement objective from an all-in or all-out mask."""
    return 1 / torch.sin(torch.pi * area.clamp(1e-3, 1 - 1e-3)) - 1


def area_prior(mask: torch.Tensor) -> torch.Tensor:
    """B: ``area_penalty`` of each soft mask's mean."""
    return area_penalty(mask.reshape(mask.size(0), -1).mean(dim=1))


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """The module's parameters as constants for the ops run inside (gradients still reach the
    inputs): the complement objective's background branch trains only the mask."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
