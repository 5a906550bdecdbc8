"""``solo-scaca-pretrain``: the host's pretraining entry point for a pip-installed solo-learn.

A pip-installed host has no ``main_pretrain.py``; this command runs the same pipeline from the
host's own parts (``parse_cfg``, its datasets and transforms, its DALI data module, Checkpointer
and AutoResumer) with the plugin registered. Usage is the host's:

    solo-scaca-pretrain --config-path scripts/pretrain/cifar --config-name swav_scaca.yaml

Without a CUDA device the host's CPU settings (``solo_scaca.host.cpu``) are applied, and said once.
"""

from typing import Optional

import hydra
import torch
from lightning.pytorch import seed_everything
from omegaconf import DictConfig
from solo.args.pretrain import parse_cfg
from solo.data.pretrain_dataloader import (
    FullTransformPipeline,
    NCropAugmentation,
    build_transform_pipeline,
    prepare_dataloader,
    prepare_datasets,
)
from solo.methods import METHODS
from solo.utils.misc import make_contiguous

from solo_scaca.cli.common import fit, prepare_cfg
from solo_scaca.host.cifar_folders import (
    classification_loaders,
    loading_name,
    parse_cfg_for_folders,
)
from solo_scaca.host.named_errors import name_unreadable_images
from solo_scaca.registration import register


def _val_loader(cfg: DictConfig):
    """The host's validation loader, or None when the config has no validation data."""
    if cfg.data.val_path is None or (cfg.data.dataset == "custom" and cfg.data.no_labels):
        return None
    val_format = "image_folder" if cfg.data.format == "dali" else cfg.data.format
    _, val_loader = classification_loaders(
        cfg.data.dataset,
        cfg.data.train_path,
        cfg.data.val_path,
        data_format=val_format,
        batch_size=cfg.optimizer.batch_size,
        num_workers=cfg.data.num_workers,
    )
    return val_loader


def _train_data(cfg: DictConfig) -> dict:
    """``trainer.fit`` keyword arguments for the training data (torchvision or DALI)."""
    if cfg.data.format == "dali":
        # the host's DALI data module, able to run dali.device=cpu without a GPU
        from solo_scaca.host.dali_cpu import (
            PretrainDALIDataModule,
            build_transform_pipeline_dali,
            data_module_kwargs,
        )

        build = lambda aug: build_transform_pipeline_dali(  # noqa: E731
            cfg.data.dataset, aug, dali_device=cfg.dali.device
        )
    else:
        build = lambda aug: build_transform_pipeline(cfg.data.dataset, aug)  # noqa: E731
    transform = FullTransformPipeline(
        [NCropAugmentation(build(aug), aug.num_crops) for aug in cfg.augmentations]
    )
    if cfg.data.format == "dali":
        datamodule = PretrainDALIDataModule(
            **data_module_kwargs(cfg),
            transforms=transform,
            num_large_crops=cfg.data.num_large_crops,
            num_small_crops=cfg.data.num_small_crops,
            no_labels=cfg.data.no_labels,
            encode_indexes_into_labels=cfg.dali.encode_indexes_into_labels,
            seed=cfg.seed,  # the host's module would seed every run's pipeline with 12
        )
        val_loader = _val_loader(cfg)
        if val_loader is not None:  # Lightning rejects a val_dataloader that returns None
            datamodule.val_dataloader = lambda: val_loader
        return {"datamodule": datamodule}
    dataset = name_unreadable_images(prepare_datasets(
        loading_name(cfg.data.dataset, cfg.data.train_path),
        transform,
        train_data_path=cfg.data.train_path,
        data_format=cfg.data.format,
        no_labels=cfg.data.no_labels,
        data_fraction=cfg.data.fraction,
    ))
    train_loader = prepare_dataloader(
        dataset, batch_size=cfg.optimizer.batch_size, num_workers=cfg.data.num_workers
    )
    return {"train_dataloaders": train_loader, "val_dataloaders": _val_loader(cfg)}


def pretrain(cfg: DictConfig) -> Optional[str]:
    """Pretrains ``cfg.method`` as the host's ``main_pretrain.py`` does.

    Returns:
        the path of the last checkpoint the host's Checkpointer wrote, if any.
    """
    register()  # the plugin's methods (importing the package has done it already)
    # CIFAR image folders keep their dataset name (and stem) with data.format=dali too
    cfg = prepare_cfg(cfg, parse_cfg_for_folders(parse_cfg))
    seed_everything(cfg.seed)
    if cfg.method not in METHODS:
        raise ValueError(f"method={cfg.method!r} is unknown: allowed values are {list(METHODS)}")
    if cfg.data.num_large_crops != 2 and cfg.method not in ("wmse", "mae"):
        raise ValueError(f"{cfg.method} needs 2 large crops, got {cfg.data.num_large_crops}")

    model = METHODS[cfg.method](cfg)
    make_contiguous(model)
    if not cfg.performance.disable_channel_last:
        model = model.to(memory_format=torch.channels_last)
    return fit(model, cfg, cfg.method, _train_data(cfg))


@hydra.main(version_base="1.2", config_path=None)
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``solo-scaca-pretrain``."""
    pretrain(cfg)


if __name__ == "__main__":
    main()
