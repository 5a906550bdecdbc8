"""BYOL with LEWEL's aligned term (``method=byol_lewel``, the paper's LEWEL_B; docs/method.md,
"LEWEL (positive control)").

Subclasses the host's BYOL: its global loss runs unchanged. As in LEWEL_B, the aligned
embeddings have their own projector and predictor (the neck holds the maps and the projector),
and the momentum branch has its own copy of the neck, moved by EMA with the host's momentum
pairs: ``L_lewel`` is BYOL's loss between the online aligned predictions of view v and the
momentum aligned projections of the other view, map by map.
"""

from typing import Any, Dict, List, Tuple

import omegaconf
import torch
import torch.nn as nn
from solo.losses.byol import byol_loss_func
from solo.methods.byol import BYOL
from solo.utils.momentum import initialize_momentum_params

from solo_scaca.addon.run_state import MomentumResume
from solo_scaca.addon.lewel import AlignmentNeck, LewelMixin, mlp
from solo_scaca.addon.spatial_maps import SpatialMapHook


class BYOLLEWEL(MomentumResume, LewelMixin, BYOL):
    NAME = "byol_lewel"

    def __init__(self, cfg: omegaconf.DictConfig):
        """Implements LEWEL_B (https://arxiv.org/abs/2203.14898) on the host's BYOL.

        Extra cfg settings (besides BYOL's): ``LewelMixin``'s ``lewel_*`` keys.
        """
        super().__init__(cfg)
        self.lewel_momentum_hook = SpatialMapHook(self.momentum_backbone, cfg.backbone.name)
        self.momentum_lewel_neck = None if self.lewel_head is None else self._neck(cfg)
        if self.momentum_lewel_neck is not None:
            initialize_momentum_params(self.lewel_head.neck, self.momentum_lewel_neck)

    def _neck(self, cfg: omegaconf.DictConfig) -> AlignmentNeck:
        """Maps and the aligned projector (the shape of BYOL's projector)."""
        kwargs = cfg.method_kwargs
        return self.lewel_neck(
            cfg, mlp(self.features_dim, kwargs.proj_hidden_dim, kwargs.proj_output_dim)
        )

    def build_lewel_head(self, cfg: omegaconf.DictConfig) -> nn.ModuleDict:
        """The online neck and the aligned predictor (the shape of BYOL's predictor)."""
        kwargs = cfg.method_kwargs
        predictor = mlp(kwargs.proj_output_dim, kwargs.pred_hidden_dim, kwargs.proj_output_dim)
        return nn.ModuleDict({"neck": self._neck(cfg), "predictor": predictor})

    @property
    def momentum_pairs(self) -> List[Tuple[Any, Any]]:
        """Adds (online neck, momentum neck) to the host's momentum pairs."""
        extra = [] if self.lewel_head is None else [
            (self.lewel_head.neck, self.momentum_lewel_neck)
        ]
        return super().momentum_pairs + extra

    @torch.no_grad()
    def momentum_forward(self, X: torch.Tensor) -> Dict[str, Any]:
        """The host's momentum forward pass; during a training step, its spatial map is
        recorded."""
        if self._lewel_step is None:
            return super().momentum_forward(X)
        with self.lewel_momentum_hook.capture() as hook:
            out = super().momentum_forward(X)
        self._lewel_step.setdefault("momentum", []).append(hook.fmap)
        return out

    def lewel_loss(self, fmaps: Dict[str, List[torch.Tensor]]
                   ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """BYOL's sum over (target view, other large crop) of the negative cosine similarity,
        per aligned embedding (image and map index)."""
        n = self.num_large_crops
        online = [self.lewel_head.neck(f, self.lewel_map_hook.feature_head)
                  for f in fmaps["online"][:n]]
        preds = [self.lewel_head.predictor(z) for _, z in online]
        with torch.no_grad():
            targets = [self.momentum_lewel_neck(f, self.lewel_momentum_hook.feature_head)[1]
                       for f in fmaps["momentum"][:n]]
        loss = sum(byol_loss_func(preds[v2], targets[v1])
                   for v1 in range(n) for v2 in range(n) if v2 != v1)
        return loss, [maps for maps, _ in online]
