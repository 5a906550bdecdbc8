"""What the plugin's pretraining and linear commands share with the host's scripts: config
preparation, resuming, and the Lightning run with the host's Checkpointer and wandb logger."""

import inspect
import os
import warnings
from typing import Callable, Optional, Tuple

import lightning.pytorch as pl
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.wandb import WandbLogger
from lightning.pytorch.strategies.ddp import DDPStrategy
from omegaconf import DictConfig, OmegaConf
from solo.utils.auto_resumer import AutoResumer
from solo.utils.checkpointer import Checkpointer

from solo_scaca.host.checkpoints import AtomicCheckpointIO, readable_checkpoint
from solo_scaca.host.cpu import apply_cpu_overrides


def prepare_cfg(cfg: DictConfig, parse_cfg: Callable[[DictConfig], DictConfig]) -> DictConfig:
    """Opens the config, applies the CPU settings without CUDA (said once), runs the host's
    ``parse_cfg``."""
    OmegaConf.set_struct(cfg, False)
    changed = apply_cpu_overrides(cfg)
    if changed:
        settings = " ".join(f"{k}={v!r}" for k, v in changed.items())
        print(f"solo-scaca: no CUDA device found, using the host's CPU settings: {settings}")
    return parse_cfg(cfg)


def _whole_checkpoint(path: Optional[str]) -> Optional[str]:
    """``path`` if it is a whole checkpoint; else (a truncated file, left by a run killed while
    the host's own scripts wrote it) the newest whole one beside it, or None, said either way."""
    if path is None or readable_checkpoint(path):
        return path
    folder = os.path.dirname(path)
    others = sorted((os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".ckpt")),
                    key=os.path.getmtime, reverse=True)
    whole = next((p for p in others if readable_checkpoint(p)), None)
    warnings.warn(f"auto-resume: {path} is truncated or unreadable, skipped; "
                  + (f"resuming from {whole}" if whole else "starting from scratch"))
    return None if whole is None else str(whole)


def resume_path(cfg: DictConfig, run_dir: str) -> Tuple[Optional[str], Optional[str]]:
    """Checkpoint to resume from (explicit, or found by the host's AutoResumer under
    ``checkpoint.dir/run_dir``) and the wandb run id."""
    if cfg.auto_resume.enabled and cfg.resume_from_checkpoint is None:
        resumer = AutoResumer(
            checkpoint_dir=os.path.join(cfg.checkpoint.dir, run_dir),
            max_hours=cfg.auto_resume.max_hours,
        )
        ckpt_path, wandb_run_id = resumer.find_checkpoint(cfg)
        ckpt_path = _whole_checkpoint(ckpt_path)
        if ckpt_path is not None:
            print(f"Resuming from previous checkpoint that matches specifications: '{ckpt_path}'")
        return ckpt_path, wandb_run_id
    ckpt_path = cfg.resume_from_checkpoint
    if ckpt_path is not None:
        del cfg.resume_from_checkpoint
    return ckpt_path, None


def fit(model: pl.LightningModule, cfg: DictConfig, run_dir: str, data: dict) -> Optional[str]:
    """Trains ``model`` as the host's scripts do (Checkpointer under ``checkpoint.dir/run_dir``,
    wandb, the Trainer settings found in ``cfg``, DDP without unused parameters).

    Returns:
        the path of the last checkpoint the host's Checkpointer wrote in this call, if any.

    Raises:
        KeyboardInterrupt: training was interrupted (Lightning itself returns quietly).
    """
    ckpt_path, wandb_run_id = resume_path(cfg, run_dir)
    callbacks, logger, checkpointer = [], None, None
    if cfg.checkpoint.enabled:
        checkpointer = Checkpointer(
            cfg,
            logdir=os.path.join(cfg.checkpoint.dir, run_dir),
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
        logger.watch(model, log="gradients", log_freq=100)
        logger.log_hyperparams(OmegaConf.to_container(cfg))
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    else:  # where Lightning's default would be CSV without TensorBoard installed: the same
        # file on every machine (the mechanism metrics and the benchmarks read metrics.csv)
        logger = CSVLogger(save_dir=cfg.get("default_root_dir") or os.getcwd(),
                           name="lightning_logs")

    trainer_cfg = OmegaConf.to_container(cfg)
    valid = inspect.signature(Trainer.__init__).parameters
    trainer_kwargs = {k: trainer_cfg[k] for k in valid if k in trainer_cfg}
    trainer_kwargs.update(
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        plugins=[AtomicCheckpointIO()],  # a killed run leaves no truncated checkpoint
        strategy=DDPStrategy(find_unused_parameters=False)
        if cfg.strategy == "ddp"
        else cfg.strategy,
    )
    trainer = Trainer(**trainer_kwargs)
    trainer.fit(model, ckpt_path=ckpt_path, **data)
    if trainer.interrupted:  # Lightning swallows Ctrl-C / SIGINT: an unfinished run is no result
        kept = ("its epoch checkpoints are kept (auto_resume.enabled=True continues it)"
                if checkpointer is not None else "no checkpoint was written")
        raise KeyboardInterrupt(f"{cfg.name}: training interrupted; {kept}")
    # a run resumed after its last epoch trains nothing, and the Checkpointer writes nothing
    last = getattr(checkpointer, "last_ckpt", None)
    return None if last is None else str(last)
