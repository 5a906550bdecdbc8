"""SwAV with LEWEL's aligned term (``method=swav_lewel``; docs/method.md, "LEWEL (positive
control)").

Subclasses the host's SwAV: its projector, prototypes, queue, Sinkhorn and loss run unchanged.
The aligned embeddings go through SwAV's own projector and prototypes; for each map index the
host's Sinkhorn gives codes over that index's aligned embeddings of the batch (no gradient, no
queue), and ``L_lewel`` is SwAV's swapped prediction between the two views' aligned embeddings
of the same index, averaged over the indices.
"""

from typing import Dict, List, Tuple

import omegaconf
import torch
import torch.nn as nn
import torch.nn.functional as F
from solo.losses.swav import swav_loss_func
from solo.methods.swav import SwAV

from solo_scaca.addon.lewel import LewelMixin


class SwAVLEWEL(LewelMixin, SwAV):
    NAME = "swav_lewel"
    LATE_BUFFERS = ("queue",)

    def __init__(self, cfg: omegaconf.DictConfig):
        """Implements LEWEL's aligned term (https://arxiv.org/abs/2203.14898) on the host's
        SwAV.

        Extra cfg settings (besides SwAV's): ``LewelMixin``'s ``lewel_*`` keys.
        """
        super().__init__(cfg)

    def build_lewel_head(self, cfg: omegaconf.DictConfig) -> nn.ModuleDict:
        """The neck alone: the aligned embeddings use SwAV's projector and prototypes."""
        return nn.ModuleDict({"neck": self.lewel_neck(cfg)})

    def lewel_loss(self, fmaps: Dict[str, List[torch.Tensor]]
                   ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """SwAV's swapped prediction between the large crops' aligned embeddings of each map
        index, with that index's Sinkhorn codes; the mean over the indices."""
        maps, scores = [], []
        for fmap in fmaps["online"][: self.num_large_crops]:
            view_maps, aligned = self.lewel_head.neck(fmap, self.lewel_map_hook.feature_head)
            p = self.prototypes(F.normalize(self.projector(aligned)))
            maps.append(view_maps)
            scores.append(p.view(view_maps.size(0), view_maps.size(1), -1))  # B x M x K
        losses = []
        for k in range(scores[0].size(1)):
            preds = [p[:, k] for p in scores]
            codes = [self.sk(p) for p in preds]  # the host's Sinkhorn: no gradient
            losses.append(swav_loss_func(preds, codes, self.temperature))
        return torch.stack(losses).mean(), maps
