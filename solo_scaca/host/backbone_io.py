"""A checkpoint's backbone, alone: read, built as the host builds it, loaded, exported without
the add-on (or the LEWEL neck), with the pretraining config beside it.

The add-on lives outside ``backbone`` (``ca_head``), so a checkpoint's ``backbone.*`` weights are
a plain solo-learn backbone: they load with ``strict=True`` into the backbone the host's
``main_linear.py`` builds, exactly as a SwAV checkpoint's do.

Every function reads the checkpoint file at most once; pass ``checkpoint`` (what
``load_checkpoint`` returned) to read it no more.
"""

import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
import torch.nn as nn
from solo.methods.base import BaseMethod

from solo_scaca.host.checkpoints import load_checkpoint

PathLike = Union[str, Path]
Checkpoint = Dict[str, Any]  # a loaded checkpoint (``load_checkpoint``)


def _loaded(ckpt_path: PathLike, trust: bool, checkpoint: Optional[Checkpoint]) -> Checkpoint:
    return load_checkpoint(ckpt_path, trust) if checkpoint is None else checkpoint


def backbone_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The ``backbone.*`` entries of a method's state dict, prefix kept (older solo-learn
    versions' ``encoder.*`` renamed to ``backbone.*``)."""
    renamed = {("backbone." + k[len("encoder."):] if k.startswith("encoder.") else k): v
               for k, v in state_dict.items()}
    return {k: v for k, v in renamed.items() if k.startswith("backbone.")}


def backbone_weights(ckpt_path: PathLike, trust: bool = False,
                     checkpoint: Optional[Checkpoint] = None) -> Dict[str, torch.Tensor]:
    """A checkpoint's backbone weights, named as the backbone's own state dict names them."""
    state = backbone_state_dict(_loaded(ckpt_path, trust, checkpoint)["state_dict"])
    return {k[len("backbone."):]: v for k, v in state.items()}


def read_pretrain_args(ckpt_path: PathLike, trust: bool = False,
                       checkpoint: Optional[Checkpoint] = None) -> Dict[str, Any]:
    """The pretraining config of a checkpoint: embedded by ``export_backbone``, else the
    ``args.json`` that the host's Checkpointer writes beside it."""
    ckpt = _loaded(ckpt_path, trust, checkpoint)
    if "cfg" in ckpt:
        return ckpt["cfg"]
    args_path = Path(ckpt_path).parent / "args.json"
    if not args_path.exists():
        raise FileNotFoundError(f"{args_path} not found: the pretraining config of {ckpt_path}")
    return json.loads(args_path.read_text())


def build_backbone(
    name: str, dataset: str, method: str = "swav_scaca", kwargs: Optional[dict] = None
) -> nn.Module:
    """The backbone as the host's ``main_linear.py`` builds it (no fc; CIFAR stem on CIFAR)."""
    backbone = BaseMethod._BACKBONES[name](method, **(kwargs or {}))
    if name.startswith("resnet"):
        backbone.fc = nn.Identity()
        if dataset in ("cifar10", "cifar100"):
            backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
            backbone.maxpool = nn.Identity()
    return backbone


def load_backbone(ckpt_path: PathLike, trust: bool = False,
                  checkpoint: Optional[Checkpoint] = None) -> nn.Module:
    """Builds the host's backbone for a checkpoint and loads its weights with ``strict=True``."""
    checkpoint = _loaded(ckpt_path, trust, checkpoint)
    args = read_pretrain_args(ckpt_path, checkpoint=checkpoint)
    backbone = build_backbone(
        args["backbone"]["name"], args["data"]["dataset"], args["method"],
        args["backbone"].get("kwargs"),
    )
    backbone.load_state_dict(backbone_weights(ckpt_path, checkpoint=checkpoint), strict=True)
    return backbone


def export_backbone(ckpt_path: PathLike, out_path: PathLike, trust: bool = False) -> Path:
    """Writes a backbone-only checkpoint (``state_dict`` of ``backbone.*`` keys, plus ``cfg``).

    It loads wherever a solo-learn checkpoint does (``main_linear.py``'s
    ``pretrained_feature_extractor``, the detectron2 converter) and into ``load_backbone``.
    """
    checkpoint = load_checkpoint(ckpt_path, trust)
    state = backbone_state_dict(checkpoint["state_dict"])
    if not state:
        raise ValueError(f"{ckpt_path} has no backbone.* weights")
    return save_backbone(state, read_pretrain_args(ckpt_path, checkpoint=checkpoint), out_path)


def save_backbone(state: Dict[str, torch.Tensor], cfg: Dict[str, Any],
                  out_path: PathLike) -> Path:
    """Writes a backbone-only checkpoint: ``state`` (``backbone.*`` keys) and the pretraining
    config ``cfg``, the format ``load_backbone`` and the host's linear evaluation read."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "cfg": cfg}, out_path)
    return out_path
