"""The host's settings for a machine without a CUDA device (shared/design/HOST.md)."""

from typing import Dict

import torch
from omegaconf import DictConfig, OmegaConf

# devices must stay a sequence: the host scales the lr by len(cfg.devices)
CPU_OVERRIDES: Dict[str, object] = {
    "accelerator": "cpu",
    "devices": "1",
    "strategy": "auto",
    "sync_batchnorm": False,
    "precision": 32,
    "wandb.enabled": False,
    "performance.disable_channel_last": True,
}


def apply_cpu_overrides(cfg: DictConfig) -> Dict[str, object]:
    """On a machine without CUDA, sets the host's CPU settings in ``cfg`` (in place).

    Returns the settings that changed (empty when CUDA is available or nothing changed).
    """
    if torch.cuda.is_available():
        return {}
    changed = {}
    for key, value in CPU_OVERRIDES.items():
        if OmegaConf.select(cfg, key) != value:
            OmegaConf.update(cfg, key, value, force_add=True)
            changed[key] = value
    return changed
