"""The host's settings for a machine without a CUDA device (accelerator, devices, strategy,
precision, no wandb, no channels-last), applied by the plugin's commands when CUDA is absent."""

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

    A config that already asks for ``accelerator=cpu`` keeps its own devices, strategy and
    precision (e.g. ``strategy=ddp devices=2`` for multi-process CPU training); only sync batch
    norm, which needs CUDA, is turned off.

    Returns the settings that changed (empty when CUDA is available or nothing changed).
    """
    if torch.cuda.is_available():
        return {}
    overrides = CPU_OVERRIDES
    if OmegaConf.select(cfg, "accelerator") == "cpu":
        overrides = {"sync_batchnorm": False}
    changed = {}
    for key, value in overrides.items():
        if OmegaConf.select(cfg, key) != value:
            OmegaConf.update(cfg, key, value, force_add=True)
            changed[key] = value
    return changed
