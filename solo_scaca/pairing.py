"""Partner selection for the cross-attention add-on (METHOD.md section 1).

Each image i of a large crop (view) v gets one partner: another image of the local batch
(or, in ``self`` mode, the other view of the same image). Selection uses no gradient.
"""

from typing import List, Optional, Tuple

import torch

PAIRING_MODES = ("prototype", "nn", "self", "random")


def _exclude_self(sim: torch.Tensor) -> torch.Tensor:
    """Returns ``sim`` with its diagonal set to -inf, so that nobody picks itself."""
    eye = torch.eye(sim.size(0), dtype=torch.bool, device=sim.device)
    return sim.masked_fill(eye, float("-inf"))


@torch.no_grad()
def prototype_partners(codes: torch.Tensor) -> torch.Tensor:
    """Picks, for each row of ``codes`` (B x K, rows summing to 1), the image that shares its
    code argmax with the largest code similarity ``<q_i, q_j>``; where no image shares the
    argmax, the image with the largest code similarity.

    Code similarities lie in [0, 1], so a bonus of 2 for a shared argmax ranks every
    sharing image above every other one.
    """
    sim = codes @ codes.t()
    top = codes.argmax(dim=1)
    shared = (top.unsqueeze(0) == top.unsqueeze(1)).to(sim.dtype)
    return _exclude_self(sim + 2.0 * shared).argmax(dim=1)


@torch.no_grad()
def nn_partners(z: torch.Tensor) -> torch.Tensor:
    """Picks the nearest other image by cosine similarity of the (normalised) projections."""
    z = torch.nn.functional.normalize(z, dim=1)
    return _exclude_self(z @ z.t()).argmax(dim=1)


@torch.no_grad()
def random_partners(batch_size: int, device: torch.device) -> torch.Tensor:
    """Picks a uniformly random other image (a control without any similarity signal)."""
    shift = torch.randint(1, batch_size, (batch_size,), device=device)
    return (torch.arange(batch_size, device=device) + shift) % batch_size


@torch.no_grad()
def select_partners(
    mode: str,
    codes: List[torch.Tensor],
    z: Optional[List[torch.Tensor]] = None,
) -> List[Tuple[int, torch.Tensor]]:
    """Selects the partner of every image of every large crop.

    Args:
        mode: one of ``PAIRING_MODES``.
        codes: per view, the Sinkhorn codes (B x K) of the local batch.
        z: per view, the projections (B x D); needed by ``nn``.

    Returns:
        per view v, ``(partner_view, partner_index)``: image i of view v is paired with image
        ``partner_index[i]`` of view ``partner_view``.
    """
    if mode not in PAIRING_MODES:
        raise ValueError(f"ca_pairing={mode!r} is not one of {PAIRING_MODES}")
    num_views = len(codes)
    batch_size = codes[0].size(0)
    device = codes[0].device
    if mode == "self":
        if num_views < 2:
            raise ValueError("ca_pairing='self' needs at least two large crops")
        same = torch.arange(batch_size, device=device)
        return [((v + 1) % num_views, same) for v in range(num_views)]
    if batch_size < 2:
        raise ValueError(
            f"ca_pairing={mode!r} needs at least 2 images per batch to pair, got {batch_size}"
        )
    if mode == "prototype":
        return [(v, prototype_partners(codes[v])) for v in range(num_views)]
    if mode == "nn":
        if z is None:
            raise ValueError("ca_pairing='nn' needs the projections z")
        return [(v, nn_partners(z[v])) for v in range(num_views)]
    return [(v, random_partners(batch_size, device)) for v in range(num_views)]
