"""``solo-scaca-pretrain``: the host's pretraining entry point for a pip-installed solo-learn.

A pip-installed host has no ``main_pretrain.py``; this command runs the same pipeline from the
host's own parts (``parse_cfg``, its datasets and transforms, its DALI data module, Checkpointer
and AutoResumer) with the plugin registered. Usage is the host's:

    solo-scaca-pretrain --config-path scripts/pretrain/cifar --config-name swav_scaca.yaml

Without a CUDA device the host's CPU settings (``solo_scaca.cpu``) are applied, and said once.
"""

import inspect
import os
from typing import Optional

import hydra
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers.wandb import WandbLogger
from lightning.pytorch.strategies.ddp import DDPStrategy
from omegaconf import DictConfig, OmegaConf
from solo.args.pretrain import parse_cfg
from solo.data.classification_dataloader import prepare_data as prepare_data_classification
from solo.data.pretrain_dataloader import (
    FullTransformPipeline,
    NCropAugmentation,
    build_transform_pipeline,
    prepare_dataloader,
    prepare_datasets,
)
from solo.methods import METHODS
from solo.utils.auto_resumer import AutoResumer
from solo.utils.checkpointer import Checkpointer
from solo.utils.misc import make_contiguous

import solo_scaca  # noqa: F401  (registers swav_scaca)
from solo_scaca.cpu import apply_cpu_overrides
from solo_scaca.data.named_errors import name_unreadable_images


def _val_loader(cfg: DictConfig):
    """The host's validation loader, or None when the config has no validation data."""
    if cfg.data.val_path is None or (cfg.data.dataset == "custom" and cfg.data.no_labels):
        return None
    val_format = "image_folder" if cfg.data.format == "dali" else cfg.data.format
    _, val_loader = prepare_data_classification(
        cfg.data.dataset,
        train_data_path=cfg.data.train_path,
        val_data_path=cfg.data.val_path,
        data_format=val_format,
        batch_size=cfg.optimizer.batch_size,
        num_workers=cfg.data.num_workers,
    )
    return val_loader


def _train_data(cfg: DictConfig) -> dict:
    """``trainer.fit`` keyword arguments for the training data (torchvision or DALI)."""
    if cfg.data.format == "dali":
        # the host's DALI data module, able to run dali.device=cpu without a GPU
        from solo_scaca.dali_cpu import PretrainDALIDataModule, build_transform_pipeline_dali

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
            dataset=cfg.data.dataset,
            train_data_path=cfg.data.train_path,
            transforms=transform,
            num_large_crops=cfg.data.num_large_crops,
            num_small_crops=cfg.data.num_small_crops,
            num_workers=cfg.data.num_workers,
            batch_size=cfg.optimizer.batch_size,
            no_labels=cfg.data.no_labels,
            data_fraction=cfg.data.fraction,
            dali_device=cfg.dali.device,
            encode_indexes_into_labels=cfg.dali.encode_indexes_into_labels,
        )
        val_loader = _val_loader(cfg)
        if val_loader is not None:  # Lightning rejects a val_dataloader that returns None
            datamodule.val_dataloader = lambda: val_loader
        return {"datamodule": datamodule}
    dataset = name_unreadable_images(prepare_datasets(
        cfg.data.dataset,
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


def _resume_path(cfg: DictConfig):
    """Checkpoint to resume from (explicit, or found by the host's AutoResumer) and wandb id."""
    if cfg.auto_resume.enabled and cfg.resume_from_checkpoint is None:
        resumer = AutoResumer(
            checkpoint_dir=os.path.join(cfg.checkpoint.dir, cfg.method),
            max_hours=cfg.auto_resume.max_hours,
        )
        ckpt_path, wandb_run_id = resumer.find_checkpoint(cfg)
        if ckpt_path is not None:
            print(f"Resuming from previous checkpoint that matches specifications: '{ckpt_path}'")
        return ckpt_path, wandb_run_id
    ckpt_path = cfg.resume_from_checkpoint
    if ckpt_path is not None:
        del cfg.resume_from_checkpoint
    return ckpt_path, None


def pretrain(cfg: DictConfig) -> Optional[str]:
    """Pretrains ``cfg.method`` as the host's ``main_pretrain.py`` does.

    Returns:
        the path of the last checkpoint the host's Checkpointer wrote, if any.
    """
    OmegaConf.set_struct(cfg, False)
    changed = apply_cpu_overrides(cfg)
    if changed:
        settings = " ".join(f"{k}={v!r}" for k, v in changed.items())
        print(f"solo-scaca: no CUDA device found, using the host's CPU settings: {settings}")
    cfg = parse_cfg(cfg)
    seed_everything(cfg.seed)
    if cfg.method not in METHODS:
        raise ValueError(f"method={cfg.method!r} is unknown: allowed values are {list(METHODS)}")
    if cfg.data.num_large_crops != 2 and cfg.method not in ("wmse", "mae"):
        raise ValueError(f"{cfg.method} needs 2 large crops, got {cfg.data.num_large_crops}")

    model = METHODS[cfg.method](cfg)
    make_contiguous(model)
    if not cfg.performance.disable_channel_last:
        model = model.to(memory_format=torch.channels_last)
    data = _train_data(cfg)
    ckpt_path, wandb_run_id = _resume_path(cfg)

    callbacks, logger = [], None
    checkpointer = None
    if cfg.checkpoint.enabled:
        checkpointer = Checkpointer(
            cfg,
            logdir=os.path.join(cfg.checkpoint.dir, cfg.method),
            frequency=cfg.checkpoint.frequency,
            keep_prev=cfg.checkpoint.keep_prev,
        )
        callbacks.append(checkpointer)
    if cfg.wandb.enabled:
        logger = WandbLogger(
            name=cfg.name,
            project=cfg.wandb.project,
            entity=cfg.wandb.entity,
            offline=cfg.wandb.offline,
            resume="allow" if wandb_run_id else None,
            id=wandb_run_id,
        )
        logger.log_hyperparams(OmegaConf.to_container(cfg))
        callbacks.append(LearningRateMonitor(logging_interval="step"))

    trainer_cfg = OmegaConf.to_container(cfg)
    valid = inspect.signature(Trainer.__init__).parameters
    trainer_kwargs = {k: trainer_cfg[k] for k in valid if k in trainer_cfg}
    trainer_kwargs.update(
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        strategy=DDPStrategy(find_unused_parameters=False)
        if cfg.strategy == "ddp"
        else cfg.strategy,
    )
    trainer = Trainer(**trainer_kwargs)
    trainer.fit(model, ckpt_path=ckpt_path, **data)
    return None if checkpointer is None else str(checkpointer.last_ckpt)


@hydra.main(version_base="1.2", config_path=None)
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``solo-scaca-pretrain``."""
    pretrain(cfg)


if __name__ == "__main__":
    main()
