"""LEWEL (Huang et al., CVPR 2022, "Learning Where to Learn in Cross-View Self-Supervised
Learning") as a positive control: a method known to learn where to pool, on the same host
methods, spatial maps and metrics as the add-on (docs/method.md, "LEWEL (positive control)").

A per-pixel (1x1 conv) projection head on the backbone's spatial map F predicts M alignment
maps: per pixel, the M logits are L2-normalised (so each lies in [-1, 1]) and divided by a
temperature, then each map is a softmax over the H x W locations; within a map the largest
weight is at most e^(2 / temperature) times the smallest. The aligned embedding k of an image is
sum_u map_k(u) F(u) (a uniform map gives the pooled feature). Each method matches view v's
aligned embedding k with view v''s, same k, through its own head and loss
(``solo_scaca/methods/byol_lewel.py``, ``swav_lewel.py``); ``LewelMixin`` holds the rest.
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import omegaconf
import torch
import torch.nn as nn
import torch.nn.functional as F
from solo.utils.misc import omegaconf_select

from solo_scaca.addon.mechanism_metrics import mask_entropy, mask_peak
from solo_scaca.addon.config import check_number
from solo_scaca.addon.run_state import AddonParams, EpochSeeding, LateBuffers, check_finite
from solo_scaca.addon.spatial_maps import SPATIAL_SPECS, SpatialMapHook

LEWEL_KEYS = ("lewel_weight", "lewel_num_maps", "lewel_temperature", "lewel_hidden_dim")
# numeric keys: default, lower bound, strict bound, integer
LEWEL_NUMBERS = {
    # L = L_host + w L_lewel: w = 1 weighs both terms equally, as the paper's 0.5 / 0.5
    "lewel_weight": (1.0, 0, False, False),
    # M >= 2: the L2 normalisation over a single logit leaves only its sign (no gradient)
    "lewel_num_maps": (4, 1, True, True),
    # the paper's scale (1.0): a map's max / min weight <= e^2
    "lewel_temperature": (1.0, 0, True, False),
}


def mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear-BN-ReLU-Linear, the shape of the host's BYOL and SwAV heads."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, out_dim),
    )


class AlignmentNeck(nn.Module):
    def __init__(self, in_dim: int, hidden_dim: int, num_maps: int, temperature: float,
                 projector: Optional[nn.Module] = None):
        """M alignment maps of a spatial map and its M aligned embeddings.

        Args:
            in_dim: channels C of the spatial map.
            hidden_dim: width of the per-pixel head.
            num_maps: M.
            temperature: divides the L2-normalised logits.
            projector: applied to the aligned embeddings (None: returned as they are).
        """
        super().__init__()
        self.num_maps = num_maps
        self.temperature = temperature
        self.map_head = nn.Sequential(
            nn.Conv2d(in_dim, hidden_dim, 1, bias=False),
            nn.BatchNorm2d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, num_maps, 1, bias=False),
        )
        self.projector = projector

    def maps(self, fmap: torch.Tensor) -> torch.Tensor:
        """B x M x H x W, each map a distribution over the H x W locations."""
        logits = F.normalize(self.map_head(fmap), dim=1) / self.temperature
        return logits.flatten(2).softmax(dim=-1).view_as(logits)

    def forward(self, fmap: torch.Tensor, feature_head: Optional[Callable] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The maps (B x M x H x W) and the aligned embeddings, (B * M) x D, image-major
        (row b * M + k), after ``feature_head`` (what the backbone does after pooling) and the
        projector."""
        maps = self.maps(fmap)
        aligned = torch.einsum("bmhw,bchw->bmc", maps, fmap).flatten(0, 1)
        if feature_head is not None:
            aligned = feature_head(aligned)
        if self.projector is not None:
            aligned = self.projector(aligned)
        return maps, aligned

    def extra_repr(self) -> str:
        return f"num_maps={self.num_maps}, temperature={self.temperature}"


@torch.no_grad()
def lewel_maps(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The alignment maps (B x M x H x W) of a batch for a ``*_lewel`` model, computed in eval
    mode (the per-pixel head's running statistics); the model's mode is restored."""
    if getattr(model, "lewel_head", None) is None:
        raise ValueError(f"{type(model).__name__} has no alignment maps (a *_lewel model "
                         "trained with lewel_weight > 0 is needed)")
    was_training = model.training
    model.eval()
    try:
        with model.lewel_map_hook.capture() as hook:
            model.backbone(images)
        return model.lewel_head.neck.maps(hook.fmap)
    finally:
        model.train(was_training)


@torch.no_grad()
def map_metrics(maps: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Mean normalised entropy (1 = uniform) and peak (HW x max) of every map of every view."""
    flat = [m.flatten(0, 1) for m in maps]
    return {
        "lewel_map_entropy": torch.stack([mask_entropy(m) for m in flat]).mean(),
        "lewel_map_peak": torch.stack([mask_peak(m) for m in flat]).mean(),
    }


class LewelMixin(AddonParams, LateBuffers, EpochSeeding):
    """LEWEL's aligned term for a host method; list it before the host class. The host's step
    runs unchanged; the large crops' spatial maps are recorded while it runs, and
    ``lewel_weight * L_lewel`` is added. A method states its neck (``build_lewel_head``) and
    its loss (``lewel_loss``).

    Its cfg settings (``method_kwargs``):
        lewel_weight (float): weight of the aligned term (0: exactly the host method).
        lewel_num_maps (int): number of alignment maps M.
        lewel_temperature (float): divides the maps' L2-normalised logits.
        lewel_hidden_dim (int): width of the per-pixel head (None: proj_hidden_dim).
    """

    NAME: str = ""  # the registry name, e.g. "byol_lewel"
    ADDON_HEAD = "lewel_head"

    def __init__(self, cfg: omegaconf.DictConfig):
        super().__init__(cfg)
        self.lewel_weight: float = cfg.method_kwargs.lewel_weight
        self.lewel_map_hook = SpatialMapHook(self.backbone, cfg.backbone.name)
        # everything LEWEL learns lives here, outside the backbone; with lewel_weight = 0 there
        # is none: exactly the host's method
        self.lewel_head: Optional[nn.ModuleDict] = (
            self.build_lewel_head(cfg) if self.lewel_weight > 0 else None
        )
        # the step's recorded spatial maps ("online", and "momentum" where the method has it)
        self._lewel_step: Optional[Dict[str, List[torch.Tensor]]] = None

    # ----------------------------------------------------------------- what a method states

    def build_lewel_head(self, cfg: omegaconf.DictConfig) -> nn.ModuleDict:
        """The online part: ``neck`` (an ``AlignmentNeck``) and whatever else the loss needs."""
        raise NotImplementedError

    def lewel_loss(self, fmaps: Dict[str, List[torch.Tensor]]
                   ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """The aligned term from the large crops' spatial maps, and the online maps per view."""
        raise NotImplementedError

    def lewel_neck(self, cfg: omegaconf.DictConfig,
                   projector: Optional[nn.Module] = None) -> AlignmentNeck:
        """An ``AlignmentNeck`` on the backbone's features with the config's settings."""
        kwargs = cfg.method_kwargs
        return AlignmentNeck(self.features_dim, kwargs.lewel_hidden_dim, kwargs.lewel_num_maps,
                             kwargs.lewel_temperature, projector)

    # ------------------------------------------------------------------------- configuration

    @classmethod
    def add_and_assert_specific_cfg(cls, cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Adds LEWEL's defaults to the host method's and checks every ``lewel_*`` setting."""
        cfg = super(LewelMixin, cls).add_and_assert_specific_cfg(cfg)
        kwargs = cfg.method_kwargs
        unknown = [k for k in kwargs if k.startswith("lewel_") and k not in LEWEL_KEYS]
        if unknown:
            raise ValueError(f"unknown method_kwargs {unknown} for {cls.NAME}: allowed LEWEL "
                             f"keys are {LEWEL_KEYS}")
        name = cfg.backbone.name
        if not name.startswith(tuple(SPATIAL_SPECS)):
            raise ValueError(f"backbone.name={name!r} is not supported by {cls.NAME}: LEWEL "
                             "needs the backbone's spatial map before pooling; supported "
                             f"families: {sorted(SPATIAL_SPECS)}")
        for key, (default, low, strict, integer) in LEWEL_NUMBERS.items():
            kwargs[key] = omegaconf_select(cfg, f"method_kwargs.{key}", default)
            check_number(cfg, key, low, strict, integer)
        # None: the host's projector width (the paper's maps come from its projection head)
        hidden = omegaconf_select(cfg, "method_kwargs.lewel_hidden_dim", None)
        kwargs.lewel_hidden_dim = kwargs.proj_hidden_dim if hidden is None else hidden
        check_number(cfg, "lewel_hidden_dim", 0, strict=True, integer=True)
        return cfg

    # ------------------------------------------------------------------------------ training

    def forward(self, X: torch.Tensor) -> Dict[str, Any]:
        """The host's forward pass; during a training step, its spatial map is recorded."""
        if self._lewel_step is None:
            return super().forward(X)
        with self.lewel_map_hook.capture() as hook:
            out = super().forward(X)
        self._lewel_step["online"].append(hook.fmap)
        return out

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """The host method's training step (unchanged) plus ``lewel_weight * L_lewel``."""
        if self.lewel_head is None:
            return super().training_step(batch, batch_idx)
        self._lewel_step = {"online": []}
        try:
            loss = super().training_step(batch, batch_idx)
            fmaps = self._lewel_step
        finally:  # never leave the side channel open, even when the host's step raised
            self._lewel_step = None
        lewel_loss, maps = self.lewel_loss(fmaps)
        check_finite(self, "LEWEL loss", lewel_loss, batch_idx,
                     "Lower the lr, or raise lewel_temperature.")
        self.log("train_lewel_loss", lewel_loss, on_epoch=True, sync_dist=True)
        # diagnostics: no all-reduce per step under DDP (each process logs its own batch)
        for name, value in map_metrics(maps).items():
            self.log(f"train_{name}", value, on_epoch=True)
        return loss + self.lewel_weight * lewel_loss
