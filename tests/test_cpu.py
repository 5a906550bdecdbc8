"""The CPU settings applied by the plugin's commands on a machine without CUDA."""

import pytest
import torch
from omegaconf import OmegaConf

from solo_scaca.host.cpu import CPU_OVERRIDES, apply_cpu_overrides



@pytest.fixture(autouse=True)
def no_cuda(monkeypatch):
    """Every test here sees a machine without CUDA, whatever machine runs it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_a_gpu_config_gets_the_host_cpu_settings():
    cfg = OmegaConf.create({"accelerator": "gpu", "devices": [0], "strategy": "ddp",
                            "sync_batchnorm": True, "precision": "16-mixed"})
    changed = apply_cpu_overrides(cfg)
    assert changed == CPU_OVERRIDES
    assert cfg.devices == "1" and len(cfg.devices) == 1  # the host scales lr by len(devices)
    assert cfg.performance.disable_channel_last is True and cfg.wandb.enabled is False
    assert apply_cpu_overrides(cfg) == {}  # said once: nothing left to change


def test_an_explicit_cpu_config_keeps_its_devices_and_strategy():
    cfg = OmegaConf.create({"accelerator": "cpu", "devices": 2, "strategy": "ddp",
                            "sync_batchnorm": True, "precision": "bf16-mixed"})
    assert apply_cpu_overrides(cfg) == {"sync_batchnorm": False}
    assert cfg.devices == 2 and cfg.strategy == "ddp" and cfg.precision == "bf16-mixed"


def test_with_cuda_nothing_changes(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = OmegaConf.create({"accelerator": "gpu", "devices": [0], "precision": "16-mixed"})
    assert apply_cpu_overrides(cfg) == {}
    assert cfg.accelerator == "gpu" and list(cfg.devices) == [0]
