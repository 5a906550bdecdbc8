"""Pieces of the CA objectives in which the uniform mask is not optimal (docs/method.md,
"Objectives"), pure functions on spatial maps and masks.

``self`` scores the masked feature against codes of the other view's *whole* image: global
pooling reproduces those best, so a learned mask drifts to uniform. The other objectives make
looking somewhere pay: the target moves with the mask (``self_masked``, ``co``), what the mask
leaves out is penalised (``complement``), the mask is not learned by that gradient (``fixed``),
or the partner's parts that match the image are what is pooled (``attend``).
"""

from typing import Tuple

import torch
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
    as its best match in i (mutual nearest neighbours by cosine of the maps), smoothed by a 3x3
    average and a ``floor`` share of uniform mass, normalised to sum to 1. It cannot drift to
    uniform: it is not learned."""
    b, _, h, w = fmap_i.shape
    fi = F.normalize(fmap_i.flatten(2).float(), dim=1)
    fj = F.normalize(fmap_j.flatten(2).float(), dim=1)
    sim = torch.bmm(fi.transpose(1, 2), fj)  # B x U x W
    best_w = sim.argmax(dim=2)  # B x U
    best_u = sim.argmax(dim=1)  # B x W
    mutual = (torch.gather(best_u, 1, best_w) == torch.arange(h * w, device=sim.device)).float()
    smooth = F.avg_pool2d(mutual.view(b, 1, h, w), 3, stride=1, padding=1,
                          count_include_pad=False).view(b, h * w)
    mask = smooth / smooth.sum(dim=1, keepdim=True).clamp(min=1e-12)
    return ((1 - floor) * mask + floor / (h * w)).view(b, h, w)


def attend_pool(queries: torch.Tensor, keys: torch.Tensor, fmap_j: torch.Tensor,
                attn_temperature: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Image i rebuilt from its partner j's parts: each location u of i attends over j's
    locations, ``a(u, w) = softmax_w S(u, w) / tau_a``, the attended values ``sum_w a(u, w)
    F_j(w)`` averaged over u. Returns the B x C feature and the mean attention over j's
    locations (B x W: where in j the rebuild looked). A uniform ``a`` gives GAP(F_j)."""
    sim = torch.bmm(queries.transpose(1, 2).float(), keys.float())  # B x U x W
    attn = torch.softmax(sim / attn_temperature, dim=2).mean(dim=1)  # B x W (mean over u)
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


def area_prior(mask: torch.Tensor) -> torch.Tensor:
    """B: ``1 / sin(pi * area) - 1`` of a soft mask's mean (0 at half the image, large near an
    empty or full mask): keeps the complement objective from an all-in or all-out mask."""
    area = mask.reshape(mask.size(0), -1).mean(dim=1).clamp(1e-3, 1 - 1e-3)
    return 1 / torch.sin(torch.pi * area) - 1
