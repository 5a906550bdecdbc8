"""Access to the backbone's last spatial map F (B x C x H x W), the input of the add-on.

A forward hook on the layer that feeds the backbone's global pooling records its output while
the host's own forward runs, so the pooled features (and SwAV) stay exactly the host's.
"""

from typing import Iterator, Optional
from contextlib import contextmanager

import torch
import torch.nn as nn

# backbone name -> the module whose output the backbone pools into its feature vector
SPATIAL_LAYERS = {
    "resnet18": "layer4",
    "resnet50": "layer4",
    "wide_resnet28w2": "relu",
    "wide_resnet28w8": "relu",
}


def check_backbone(name: str) -> None:
    """Fails with a clear message for a backbone whose spatial map the add-on cannot use."""
    if name not in SPATIAL_LAYERS:
        raise ValueError(
            f"backbone.name={name!r} is not supported by swav_scaca: the add-on needs the "
            f"backbone's spatial map before pooling; supported: {sorted(SPATIAL_LAYERS)}"
        )


class SpatialMapHook:
    def __init__(self, backbone: nn.Module, backbone_name: str):
        """Records the spatial map of ``backbone`` while ``capture()`` is active."""
        check_backbone(backbone_name)
        self.fmap: Optional[torch.Tensor] = None
        self._active = False
        layer = backbone.get_submodule(SPATIAL_LAYERS[backbone_name])
        layer.register_forward_hook(self._record)

    def _record(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if self._active:
            self.fmap = output

    @contextmanager
    def capture(self) -> Iterator["SpatialMapHook"]:
        """Active for one forward pass; ``fmap`` then holds that pass's map."""
        self.fmap, self._active = None, True
        try:
            yield self
        finally:
            self._active = False
