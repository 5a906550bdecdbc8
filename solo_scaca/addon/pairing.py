"""Partner selection for the cross-attention add-on (docs/method.md section 1).

Each image i of a large crop (view) v gets one partner: another image of the batch (or, in
``self`` mode, the other view of the same image). The candidates are the local batch, or, with
``ca_gather_partners``, the batch of every process; ``offset`` is then the position of the local
images among the candidates. Selection uses no gradient.
"""

from typing import List, Optional, Tuple

import torch

PAIRING_MODES = ("prototype", "nn", "self", "random")


def _exclude_self(sim: torch.Tensor, offset: int) -> torch.Tensor:
    """``sim`` (B x N) with each query's own column set to -inf, so nobody picks itself."""
    own = torch.arange(sim.size(0), device=sim.device).unsqueeze(1) + offset
    return sim.scatter(1, own, float("-inf"))


@torch.no_grad()
def prototype_partners(
    codes: torch.Tensor, candidates: Optional[torch.Tensor] = None, offset: int = 0
) -> torch.Tensor:
    """Picks, for each row of ``codes`` (B x K, rows summing to 1), the candidate that shares
    its code argmax with the largest code similarity ``<q_i, q_j>``; where no candidate shares
    the argmax, the one with the largest code similarity.

    Code similarities lie in [0, 1], so a bonus of 2 for a shared argmax ranks every
    sharing candidate above every other one.
    """
    candidates = codes if candidates is None else candidates
    sim = codes @ candidates.t()
    shared = codes.argmax(dim=1).unsqueeze(1) == candidates.argmax(dim=1).unsqueeze(0)
    return _exclude_self(sim + 2.0 * shared.to(sim.dtype), offset).argmax(dim=1)


@torch.no_grad()
def nn_partners(
    z: torch.Tensor, candidates: Optional[torch.Tensor] = None, offset: int = 0
) -> torch.Tensor:
    """Picks the nearest other candidate by cosine similarity of the projections."""
    z = torch.nn.functional.normalize(z, dim=1)
    candidates = z if candidates is None else torch.nn.functional.normalize(candidates, dim=1)
    return _exclude_self(z @ candidates.t(), offset).argmax(dim=1)


@torch.no_grad()
def random_partners(
    batch_size: int, num_candidates: int, device: torch.device, offset: int = 0
) -> torch.Tensor:
    """Picks a uniformly random other candidate (a control without any similarity signal)."""
    own = torch.arange(batch_size, device=device) + offset
    shift = torch.randint(1, num_candidates, (batch_size,), device=device)
    return (own + shift) % num_candidates


@torch.no_grad()
def select_partners(
    mode: str,
    codes: Optional[List[torch.Tensor]],
    z: Optional[List[torch.Tensor]] = None,
    candidate_codes: Optional[List[torch.Tensor]] = None,
    candidate_z: Optional[List[torch.Tensor]] = None,
    offset: int = 0,
) -> List[Tuple[int, torch.Tensor]]:
    """Selects the partner of every image of every large crop.

    Args:
        mode: one of ``PAIRING_MODES``.
        codes: per view, the codes (B x K) of the local batch; needed by ``prototype`` (None
            for a method without codes).
        z: per view, the projections (B x D); needed by ``nn``, and when ``codes`` is None.
        candidate_codes: per view, the codes of all candidates (N x K); default ``codes``.
        candidate_z: per view, the projections of all candidates; default ``z``.
        offset: index of the first local image among the candidates.

    Returns:
        per view v, ``(partner_view, partner_index)``: image i of view v is paired with
        candidate ``partner_index[i]`` of view ``partner_view``.
    """
    if mode not in PAIRING_MODES:
        raise ValueError(f"ca_pairing={mode!r} is not one of {PAIRING_MODES}")
    if codes is None and mode == "prototype":
        raise ValueError("ca_pairing='prototype' needs codes: without them use nn, self or random")
    if codes is None and z is None:
        raise ValueError(f"ca_pairing={mode!r} needs the codes or the projections z")
    candidate_codes = codes if candidate_codes is None else candidate_codes
    candidate_z = z if candidate_z is None else candidate_z
    reference, candidates = (codes, candidate_codes) if codes is not None else (z, candidate_z)
    num_views = len(reference)
    batch_size, num_candidates = reference[0].size(0), candidates[0].size(0)
    device = reference[0].device
    if mode == "self":
        if num_views < 2:
            raise ValueError("ca_pairing='self' needs at least two large crops")
        same = torch.arange(batch_size, device=device) + offset
        return [((v + 1) % num_views, same) for v in range(num_views)]
    if num_candidates < 2:
        raise ValueError(
            f"ca_pairing={mode!r} needs at least 2 images per batch to pair, got {num_candidates}"
        )
    if mode == "prototype":
        return [
            (v, prototype_partners(codes[v], candidate_codes[v], offset)) for v in range(num_views)
        ]
    if mode == "nn":
        if z is None:
            raise ValueError("ca_pairing='nn' needs the projections z")
        return [(v, nn_partners(z[v], candidate_z[v], offset)) for v in range(num_views)]
    return [
        (v, random_partners(batch_size, num_candidates, device, offset)) for v in range(num_views)
    ]
