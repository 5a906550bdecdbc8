"""``solo-scaca-linear``: the host's linear evaluation for a pip-installed solo-learn.

A pip-installed host has no ``main_linear.py``; this command runs the same pipeline from the host's
own parts (``solo.args.linear.parse_cfg``, ``prepare_data``, its DALI data module, ``LinearModel``,
Checkpointer and AutoResumer) on the backbone of a pretraining checkpoint, full or written by
``solo-scaca-export``. Usage is the host's:

    solo-scaca-linear --config-path scripts/linear/imagenet-100 --config-name swav_scaca.yaml \
        pretrained_feature_extractor=PATH/TO/CKPT.ckpt

Without a CUDA device the host's CPU settings (``solo_scaca.host.cpu``) are applied, and said once.
"""

import logging
import sys
from pathlib import Path
from typing import Optional, Tuple, Union

import hydra
import torch
import torch.nn as nn
from omegaconf import DictConfig
from solo.args.linear import parse_cfg
from solo.methods.linear import LinearModel
from solo.utils.misc import make_contiguous, omegaconf_select
from timm.data.mixup import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

from solo_scaca.cli.common import fit, prepare_cfg
from solo_scaca.host.cifar_folders import classification_loaders
from solo_scaca.host.backbone_io import backbone_weights, build_backbone
from solo_scaca.host.checkpoints import TRUST_FLAG

CKPT_SUFFIXES = (".ckpt", ".pth", ".pt")


def load_pretrained_backbone(
    backbone: nn.Module, ckpt_path: Union[str, Path], trust: bool = False
) -> None:
    """Loads a checkpoint's ``backbone.*`` weights into ``backbone`` as ``main_linear.py`` does
    (older ``encoder.*`` names accepted, ``strict=False``).

    Works for a full pretraining checkpoint and for one written by ``solo-scaca-export``; fails
    when the file holds no backbone weights at all, and warns about backbone weights it lacks.
    """
    if not str(ckpt_path).endswith(CKPT_SUFFIXES):
        raise ValueError(
            f"pretrained_feature_extractor={str(ckpt_path)!r} is invalid: "
            f"allowed values are checkpoint files ending with {CKPT_SUFFIXES}"
        )
    weights = backbone_weights(ckpt_path, trust)
    if not weights:
        raise ValueError(f"{ckpt_path} has no backbone.* weights to evaluate")
    missing, _ = backbone.load_state_dict(weights, strict=False)
    if missing:
        logging.warning(f"{ckpt_path} lacks backbone weights {missing}: they stay random")
    logging.info(f"Loaded {ckpt_path}")


def _loss_and_mixup(cfg: DictConfig) -> Tuple[nn.Module, Optional[Mixup]]:
    """The loss and the mixup/cutmix function ``main_linear.py`` picks from the config."""
    if cfg.mixup > 0 or cfg.cutmix > 0:
        mixup = Mixup(
            mixup_alpha=cfg.mixup,
            cutmix_alpha=cfg.cutmix,
            cutmix_minmax=None,
            prob=1.0,
            switch_prob=0.5,
            mode="batch",
            label_smoothing=cfg.label_smoothing,
            num_classes=cfg.data.num_classes,
        )
        return SoftTargetCrossEntropy(), mixup  # smoothing is in mixup's label transform
    if cfg.label_smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=cfg.label_smoothing), None
    return torch.nn.CrossEntropyLoss(), None


def _data(cfg: DictConfig) -> dict:
    """``trainer.fit`` keyword arguments for the data: the host's torchvision loaders, or its
    DALI data module for training with the torchvision validation loader."""
    train_loader, val_loader = classification_loaders(
        cfg.data.dataset,
        cfg.data.train_path,
        cfg.data.val_path,
        data_format="image_folder" if cfg.data.format == "dali" else cfg.data.format,
        batch_size=cfg.optimizer.batch_size,
        num_workers=cfg.data.num_workers,
        auto_augment=cfg.auto_augment,
    )
    if cfg.data.format != "dali":
        return {"train_dataloaders": train_loader, "val_dataloaders": val_loader}
    try:
        # the host's DALI data module, able to run dali.device=cpu without a GPU
        from solo_scaca.host.dali_cpu import ClassificationDALIDataModule, data_module_kwargs
    except ImportError as error:
        raise ImportError(
            "data.format=dali needs NVIDIA DALI (pip install solo-scaca[dali]); "
            "use data.format=image_folder without it"
        ) from error
    if cfg.auto_augment:
        raise ValueError("auto_augment=True is not supported with data.format=dali")
    datamodule = ClassificationDALIDataModule(
        **data_module_kwargs(cfg), val_data_path=cfg.data.val_path
    )
    datamodule.val_dataloader = lambda: val_loader  # torchvision validation saves memory
    return {"datamodule": datamodule}


def linear(cfg: DictConfig) -> Optional[str]:
    """Trains a linear classifier on the frozen pretrained backbone as ``main_linear.py`` does.

    Returns:
        the path of the last checkpoint the host's Checkpointer wrote, if any.
    """
    cfg = prepare_cfg(cfg, parse_cfg)

    backbone = build_backbone(
        cfg.backbone.name, cfg.data.dataset, cfg.pretrain_method, cfg.backbone.kwargs
    )
    trust = bool(omegaconf_select(cfg, "trust_checkpoint", False))
    load_pretrained_backbone(backbone, cfg.pretrained_feature_extractor, trust)
    loss_func, mixup_func = _loss_and_mixup(cfg)
    model = LinearModel(backbone, loss_func=loss_func, mixup_func=mixup_func, cfg=cfg)
    make_contiguous(model)
    if not cfg.performance.disable_channel_last:
        model = model.to(memory_format=torch.channels_last)
    return fit(model, cfg, "linear", _data(cfg))


@hydra.main(version_base="1.2", config_path=None)
def _hydra_main(cfg: DictConfig) -> None:
    linear(cfg)


def main() -> None:
    """Entry point of ``solo-scaca-linear``: Hydra's, plus ``--trust-checkpoint`` (the
    checkpoint may unpickle anything: see ``solo_scaca.host.checkpoints``)."""
    if TRUST_FLAG in sys.argv:
        sys.argv = [a for a in sys.argv if a != TRUST_FLAG] + ["++trust_checkpoint=True"]
    _hydra_main()


if __name__ == "__main__":
    main()
