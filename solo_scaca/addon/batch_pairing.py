"""A training step's pairing: partners (from every process with ``ca_gather_partners``), probe
partners for the partner-sensitivity metric, negatives for ``ca_response=contrast``, and the
partners' codes and labels (docs/method.md sections 1 and 6)."""

from typing import Any, List, NamedTuple, Optional, Tuple

import torch
import torch.distributed as dist
from solo.utils.misc import concat_all_gather_no_grad, get_rank
from solo.utils.misc import gather as all_gather_with_grad

from solo_scaca.addon.mechanism_metrics import labels_are_real
from solo_scaca.addon.pairing import random_partners, select_partners


def get_world_size() -> int:
    """Number of processes of the (possibly absent) default process group."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class Pairing(NamedTuple):
    """A step's partners and what the metrics and losses need of them."""

    partners: List[Tuple[int, torch.Tensor]]  # per view, (partner view, partner indices)
    codes: Optional[List[torch.Tensor]]
    partner_codes: Optional[List[torch.Tensor]]
    partner_labels: Optional[List[torch.Tensor]]
    gather: Any  # all-gather with gradient when partners come from every process, else None
    offset: int  # index of this process's first image among the candidates
    probes: Optional[List[Tuple[int, torch.Tensor]]]
    negatives: Optional[List[Tuple[int, torch.Tensor]]]


def pair_batch(mode: str, codes: Optional[List[torch.Tensor]], z: List[torch.Tensor],
               labels: Optional[torch.Tensor], gather_partners: bool, probes: bool,
               negatives: bool) -> Pairing:
    """Pairs the large crops' images (``select_partners``); with ``gather_partners`` under DDP
    the candidates are every process's images. ``probes``/``negatives``: also draw a random
    other image per view for the metrics / for ``ca_response=contrast``."""
    candidate_codes, candidate_z, candidate_labels = codes, z, labels
    offset, gather = 0, None
    if gather_partners and get_world_size() > 1:
        if codes is not None:
            candidate_codes = [concat_all_gather_no_grad(q) for q in codes]
        candidate_z = [concat_all_gather_no_grad(v) for v in z]
        candidate_labels = None if labels is None else concat_all_gather_no_grad(labels)
        offset, gather = get_rank() * len(z[0]), all_gather_with_grad
    partners = select_partners(mode, codes, z, candidate_codes, candidate_z, offset)
    batch_size, num_candidates = len(z[0]), len(candidate_z[0])

    def draw_randoms() -> Optional[List[Tuple[int, torch.Tensor]]]:
        return [(v, random_partners(batch_size, num_candidates, z[0].device, offset))
                for v in range(len(z))] if num_candidates > 1 else None

    partner_codes = None if codes is None else [
        candidate_codes[view][index] for view, index in partners]
    # one check of the candidates' labels (a device sync), not one per view
    partner_labels = ([candidate_labels[index] for _, index in partners]
                      if labels_are_real(candidate_labels) else None)
    return Pairing(partners, codes, partner_codes, partner_labels, gather, offset,
                   draw_randoms() if probes else None, draw_randoms() if negatives else None)
