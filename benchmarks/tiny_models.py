"""Tiny swav / swav_scaca configs and models built through the host's parser: the overhead and
CAM benchmarks' models, and the tests' fixtures."""

from typing import List

import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf
from solo.args.pretrain import parse_cfg
from solo.utils.sinkhorn_knopp import SinkhornKnopp

import solo_scaca  # noqa: F401  (registers swav_scaca)
from solo_scaca.host.cpu import apply_cpu_overrides

# CIFAR stem at 16 px: layer4 gives a 3 x 3 spatial map, so steps are fast yet spatial
TINY = [
    "data.dataset=cifar10",
    "augmentations.0.crop_size=16",
    "optimizer.batch_size=8",
    "method_kwargs.proj_hidden_dim=32",
    "method_kwargs.num_prototypes=10",
    "method_kwargs.ca_dim=16",
    "method_kwargs.ca_warmup_epochs=0",
]


def make_cfg(overrides: List[str] = (), method: str = "swav_scaca") -> DictConfig:
    """The shipped toy config made tiny, with ``overrides``, through the host's ``parse_cfg``."""
    with initialize_config_module("solo_scaca.configs", version_base="1.2"):
        cfg = compose("swav_scaca_toy", overrides=[f"method={method}", *TINY, *overrides])
    OmegaConf.set_struct(cfg, False)
    apply_cpu_overrides(cfg)
    return parse_cfg(cfg)


def ready_for_steps(model: torch.nn.Module) -> torch.nn.Module:
    """What SwAV's ``on_train_start`` sets up (its Sinkhorn: single process, queue disabled in
    the toy config), for calling ``training_step`` without a Trainer."""
    if hasattr(model, "sk_iters"):
        model.sk = SinkhornKnopp(model.sk_iters, model.sk_epsilon, 1)
    return model.train()
