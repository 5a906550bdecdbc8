"""Access to the backbone's last spatial map F (B x C x H x W), the input of the add-on.

A forward hook on the layer that feeds the backbone's global pooling records its output while
the host's own forward runs, so the pooled features (and SwAV) stay exactly the host's. Per
backbone family: which layer, how its output becomes B x C x H x W, and what the backbone does
after pooling (``feature_head``), so that a masked pooling lands in the same feature space.
"""

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch
import torch.nn as nn

Transform = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def _identity(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x


def _vit_tokens_to_map(backbone: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Patch tokens (class/register tokens dropped) laid back on their square grid."""
    patches = tokens[:, backbone.num_prefix_tokens :]
    side = math.isqrt(patches.size(1))
    if side * side != patches.size(1):
        raise ValueError(f"swav_scaca: {patches.size(1)} ViT patch tokens are not a square grid")
    return patches.transpose(1, 2).reshape(patches.size(0), -1, side, side)


def _channels_last_to_map(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm's Swin keeps B x H x W x C."""
    return x.permute(0, 3, 1, 2)


def _convnext_head(backbone: nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    """timm's ConvNeXt normalises after pooling (LayerNorm2d on B x C x 1 x 1)."""
    return backbone.head.norm(pooled[:, :, None, None]).flatten(1)


@dataclass(frozen=True)
class SpatialSpec:
    layer: str  # the module whose output is the spatial map
    to_map: Transform = _identity  # its output -> B x C x H x W
    feature_head: Transform = _identity  # pooled B x C -> the backbone's features
    pooled_is_gap: bool = True  # the backbone's features are feature_head(GAP(F))


# host backbone name prefix -> spec; ViT pools its class token, so its masked branch pools patch tokens
SPATIAL_SPECS = {
    "resnet": SpatialSpec("layer4"),
    "wide_resnet": SpatialSpec("relu"),
    "vit": SpatialSpec("norm", _vit_tokens_to_map, pooled_is_gap=False),
    "swin": SpatialSpec("norm", _channels_last_to_map),
    "poolformer": SpatialSpec("norm"),
    "convnext": SpatialSpec("norm_pre", feature_head=_convnext_head),
}


def spatial_spec(name: str) -> SpatialSpec:
    """The spec of a host backbone name; a clear error for one without a spatial map."""
    for prefix, spec in SPATIAL_SPECS.items():
        if name.startswith(prefix):
            return spec
    raise ValueError(
        f"backbone.name={name!r} is not supported by swav_scaca: the add-on needs the "
        f"backbone's spatial map before pooling; supported families: {sorted(SPATIAL_SPECS)}"
    )


def check_backbone(name: str) -> None:
    """Fails with a clear message for a backbone whose spatial map the add-on cannot use."""
    spatial_spec(name)


class SpatialMapHook:
    def __init__(self, backbone: nn.Module, backbone_name: str):
        """Records the spatial map of ``backbone`` while ``capture()`` is active."""
        self.spec = spatial_spec(backbone_name)
        self.backbone = backbone
        self.fmap: Optional[torch.Tensor] = None
        self._active = False
        self._handle = backbone.get_submodule(self.spec.layer).register_forward_hook(self._record)

    def remove(self) -> None:
        """Takes the hook off the backbone (for a temporary use, e.g. CAMs)."""
        self._handle.remove()

    def _record(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if self._active:
            self.fmap = self.spec.to_map(self.backbone, output)

    def feature_head(self, pooled: torch.Tensor) -> torch.Tensor:
        """What the backbone applies after its pooling (identity for most families)."""
        return self.spec.feature_head(self.backbone, pooled)

    @contextmanager
    def capture(self) -> Iterator["SpatialMapHook"]:
        """Active for one forward pass; ``fmap`` then holds that pass's map."""
        self.fmap, self._active = None, True
        try:
            yield self
        finally:
            self._active = False
