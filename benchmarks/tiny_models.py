"""Tiny swav / swav_scaca configs, models and checkpoints built through the host's parser: the
overhead and CAM benchmarks' models, and the tests' fixtures."""

import json
from pathlib import Path
from typing import List

import torch
from hydra import compose, initialize_config_dir, initialize_config_module
from omegaconf import DictConfig, OmegaConf
from solo.args.pretrain import parse_cfg
from solo.utils.sinkhorn_knopp import SinkhornKnopp

import solo_scaca  # noqa: F401  (registers the plugin's methods: solo is imported above)
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


CIFAR_CONFIGS = Path(__file__).resolve().parents[1] / "scripts" / "pretrain" / "cifar"


def make_method_cfg(name: str, overrides: List[str] = (), crop_size: int = 32) -> DictConfig:
    """The shipped ``scripts/pretrain/cifar/<name>.yaml`` of a ``*_scaca`` method with
    ``overrides``, every augmentation pipeline at ``crop_size`` px, through the host's
    ``parse_cfg``; ``name`` may be a host method (its ``_scaca`` config, ``method=name``)."""
    config = name if name.endswith("_scaca") else f"{name}_scaca"
    with initialize_config_dir(str(CIFAR_CONFIGS), version_base="1.2"):
        cfg = compose(f"{config}.yaml", overrides=[f"method={name}", *overrides])
    OmegaConf.set_struct(cfg, False)
    for pipeline in cfg.augmentations:  # BYOL's and DINO's are asymmetric: two large crops
        pipeline.crop_size = crop_size
    apply_cpu_overrides(cfg)
    return parse_cfg(cfg)


def ready_for_steps(model: torch.nn.Module, batch_size: int = 8) -> torch.nn.Module:
    """What the methods' ``on_train_start`` / ``on_train_epoch_start`` set up, for calling
    ``training_step`` without a Trainer (single process): SwAV's Sinkhorn (queue disabled in the
    toy config), DeepClusterV2's k-means assignments (random) and memory banks for
    ``batch_size`` images."""
    if hasattr(model, "sk_iters"):
        model.sk = SinkhornKnopp(model.sk_iters, model.sk_epsilon, 1)
    if hasattr(model, "kmeans_iters"):
        g = torch.Generator().manual_seed(1)
        # buffers, so that moving the model moves them
        model.register_buffer("assignments", torch.stack([
            torch.randint(0, k, (batch_size,), generator=g) for k in model.num_prototypes]))
        model.register_buffer("local_memory_index", torch.zeros(batch_size, dtype=torch.long))
        model.register_buffer("local_memory_embeddings", torch.zeros(
            model.num_large_crops, batch_size, model.proj_output_dim))
    return model.train()


def make_tiny_checkpoint(path: Path, method: str, seed: int = 0) -> Path:
    """A random-init tiny ``method`` model (``make_cfg``'s tiny config: ResNet-18, CIFAR stem)
    saved as ``{"state_dict": ...}`` with its ``args.json`` beside it (one per folder)."""
    from solo.methods import METHODS

    torch.manual_seed(seed)
    cfg = make_cfg(method=method)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": METHODS[method](cfg).state_dict()}, path)
    (path.parent / "args.json").write_text(json.dumps(OmegaConf.to_container(cfg)))
    return path
