"""One benchmark run: pretraining through the plugin's command on the shipped custom config,
evaluation with the host's k-NN and linear model, and its result file."""

import json
import math
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks.common import metadata
from benchmarks.profiles import Profile, settings_of

REPO = Path(__file__).resolve().parent.parent
PRETRAIN_CONFIG_DIR = REPO / "scripts" / "pretrain" / "custom"
LINEAR_CONFIG_DIR = REPO / "scripts" / "linear" / "custom"


def pretrain_config(profile: Profile, method: str, seed: int, train_path: Path,
                    ckpt_dir: Path, data_format: str, config: Optional[Tuple[Path, str]] = None,
                    base_overrides: Optional[Sequence[str]] = None):
    """The composed pretraining config: the shipped ``scripts/pretrain/custom/swav_scaca.yaml``
    (or ``config``: a folder and a config name) with the profile's overrides (or
    ``base_overrides``); ``method=swav`` for the baseline, everything else equal (the host's
    methods ignore the ``ca_*`` keys of ``method_kwargs``)."""
    import torch
    from hydra import compose, initialize_config_dir

    config_dir, config_name = config or (PRETRAIN_CONFIG_DIR, "swav_scaca")
    overrides = [
        f"method={method}",
        f"name=bench-{method}-seed{seed}",
        *(profile.pretrain_overrides() if base_overrides is None else base_overrides),
        f"data.format={data_format}",
        f"data.train_path={train_path}",
        f"checkpoint.dir={ckpt_dir}",
        f"++default_root_dir={ckpt_dir}",  # Lightning's own logs: there, not in the cwd
        f"++seed={seed}",
        f"++enable_progress_bar={sys.stderr.isatty()}",
        "++enable_model_summary=False",
    ]
    if data_format == "dali" and not torch.cuda.is_available():
        overrides.append("++dali.device=cpu")  # DALI's CPU pipeline (the tiny GPU-profile check)
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.2"):
        return compose(config_name, overrides=overrides)


def linear_config(profile: Profile, ckpt: str, train_path: Path, test_path: Path, seed: int):
    """The shipped ``scripts/linear/custom/swav_scaca.yaml`` through the host's linear
    ``parse_cfg``, with the profile's epochs and batch size; the host's step decay (x0.1) at
    60% and 80% of the epochs, as its 100-epoch recipe does at 60 and 80."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from solo.args.linear import parse_cfg

    from solo_scaca.host.cpu import apply_cpu_overrides

    epochs = profile.linear_epochs
    steps = sorted({max(1, round(0.6 * epochs)), max(1, round(0.8 * epochs))})
    overrides = [
        f"pretrained_feature_extractor='{ckpt}'",
        f"data.train_path={train_path}",
        f"data.val_path={test_path}",
        "data.format=image_folder",
        f"max_epochs={epochs}",
        f"optimizer.batch_size={profile.linear_batch_size}",
        f"scheduler.lr_decay_steps=[{','.join(map(str, steps))}]",
        f"++seed={seed}",
        "devices=[0]", "strategy=auto", "sync_batchnorm=False", "precision=32",
        "wandb.enabled=False", "checkpoint.enabled=False", "auto_resume.enabled=False",
    ]
    with initialize_config_dir(config_dir=str(LINEAR_CONFIG_DIR), version_base="1.2"):
        cfg = compose("swav_scaca", overrides=overrides)
    OmegaConf.set_struct(cfg, False)
    apply_cpu_overrides(cfg)
    cfg.performance = {"disable_channel_last": True}  # the inputs are feature vectors
    return parse_cfg(cfg)


# ---------------------------------------------------------------------------------- evaluation
def linear_accuracy(cfg, train: Tuple, test: Tuple) -> Dict[str, float]:
    """Top-1/top-5 (%) of the host's ``LinearModel`` trained with the host's optimizer, scheduler
    and loss on the frozen backbone's cached features.

    The backbone is frozen and in eval mode during linear training in the host too, so running
    it every epoch on the same un-augmented images would give exactly these features: caching
    them only removes repeated work (the host's linear recipe also augments the training images;
    here they are the centre crops the k-NN uses)."""
    import torch.nn as nn
    from lightning.pytorch import Trainer, seed_everything
    from solo.methods.linear import LinearModel
    from torch.utils.data import DataLoader, TensorDataset

    class CachedFeatures(nn.Identity):
        """The frozen backbone's output, computed beforehand."""

        def __init__(self, dim: int):
            super().__init__()
            self.num_features = dim

    seed_everything(cfg.seed)
    model = LinearModel(CachedFeatures(train[0].shape[1]), cfg=cfg,
                        loss_func=nn.CrossEntropyLoss())
    train_loader = DataLoader(TensorDataset(*train), batch_size=cfg.optimizer.batch_size,
                              shuffle=True)
    test_loader = DataLoader(TensorDataset(*test), batch_size=1024)
    trainer = Trainer(max_epochs=cfg.max_epochs, accelerator=cfg.accelerator,
                      devices=list(cfg.devices) if cfg.accelerator != "cpu" else 1,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0,
                      log_every_n_steps=max(1, len(train_loader)))
    trainer.fit(model, train_dataloaders=train_loader)
    result = trainer.validate(model, dataloaders=test_loader, verbose=False)[0]
    return {"linear_top1": float(result["val_acc1"]), "linear_top5": float(result["val_acc5"])}


def evaluate(ckpt: str, profile: Profile, train_path: Path, test_path: Path,
             seed: int) -> Dict[str, float]:
    """k-NN (k=20, 200; cosine, T=0.07) and linear top-1 of a checkpoint's backbone on the test
    images, both at ``crop_size`` px (resize + centre crop)."""
    import torch

    from solo_scaca.host.backbone_io import load_backbone
    from solo_scaca.host.features import extract_features, image_folder_loader, knn_accuracy

    device = "cuda" if torch.cuda.is_available() else "cpu"
    backbone = load_backbone(ckpt).to(device)
    workers = min(profile.num_workers, os.cpu_count() or 1)
    # after DALI pretrained in this process, forked loader workers deadlock on its threads' locks
    context = "forkserver" if profile.data_format == "dali" else None
    train = extract_features(backbone, image_folder_loader(
        train_path, profile.crop_size, profile.eval_batch_size, workers, context))
    test = extract_features(backbone, image_folder_loader(
        test_path, profile.crop_size, profile.eval_batch_size, workers, context))
    knn = knn_accuracy(tuple(t.to(device) for t in train), tuple(t.to(device) for t in test),
                       ks=(20, 200), distance="cosine")
    out = {"knn20_top1": knn[20][0], "knn20_top5": knn[20][1],
           "knn200_top1": knn[200][0], "knn200_top5": knn[200][1]}
    out.update(linear_accuracy(linear_config(profile, ckpt, train_path, test_path, seed),
                               train, test))
    out.update(train_images=len(train[1]), test_images=len(test[1]),
               feature_dim=int(train[0].shape[1]))
    return out


PLATEAU_NATS = 0.05


def metric_curve(ckpt_dir: Path, key: str = "train_swav_loss_epoch") -> List[float]:
    """A logged metric per epoch (default the SwAV loss), from the ``metrics.csv`` files
    Lightning's CSV logger wrote under ``ckpt_dir`` (a resumed run writes another one; the
    latest value of an epoch wins); empty when there is none."""
    import csv

    values: Dict[int, float] = {}
    paths = sorted(Path(ckpt_dir).rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    for path in paths:
        with path.open() as f:
            for row in csv.DictReader(f):
                if row.get(key):
                    values[int(row["epoch"])] = float(row[key])
    return [values[e] for e in sorted(values)]


def swav_loss_curve(ckpt_dir: Path) -> List[float]:
    """The SwAV loss of every epoch (``metric_curve``'s default)."""
    return metric_curve(ckpt_dir)


def learning_check(curve: List[float], num_prototypes: int) -> Dict[str, Any]:
    """Whether pretraining left SwAV's plateau: a loss of ln(K) is what uniform predictions
    over K prototypes give (a projector whose output no longer depends on the image)."""
    if not curve:
        return {"swav_loss_last": "", "ln_prototypes": math.log(num_prototypes), "plateau": "?"}
    plateau = curve[-1] > math.log(num_prototypes) - PLATEAU_NATS
    return {"swav_loss_last": curve[-1], "ln_prototypes": math.log(num_prototypes),
            "plateau": "yes" if plateau else "no"}


def run_dir(work_dir: Path, profile_name: str, method: str, seed: int) -> Path:
    """Where ``run_one`` keeps a run's checkpoints and logs."""
    return work_dir / profile_name / f"{method}-seed{seed}"


def epochs_done(ckpt_dir: Path) -> int:
    """How many epochs a run's folder holds checkpoints of (the host's Checkpointer names each
    ``...-ep=<epoch index>.ckpt``): 0 when none."""
    done = [int(p.stem.rsplit("-ep=", 1)[1]) for p in ckpt_dir.rglob("*-ep=*.ckpt")
            if p.stem.rsplit("-ep=", 1)[1].isdigit()] if ckpt_dir.is_dir() else []
    return max(done) + 1 if done else 0


class EpochWatcher(threading.Thread):
    """Prints a line when a new epoch checkpoint appears (the host's Checkpointer writes one per
    epoch): progress without adding a callback to the pretraining command."""

    def __init__(self, ckpt_dir: Path, label: str, epochs: int, start: float):
        super().__init__(daemon=True)
        self.ckpt_dir, self.label, self.epochs, self.t0 = ckpt_dir, label, epochs, start
        self.done = threading.Event()
        self.seen = 0

    def poll(self) -> None:
        done = epochs_done(self.ckpt_dir)
        if done > self.seen:
            self.seen = done
            print(f"[accuracy] {self.label}: epoch {done}/{self.epochs} done "
                  f"({time.time() - self.t0:.0f} s)", flush=True)

    def run(self) -> None:
        while not self.done.wait(2.0):
            self.poll()


def run_one(profile_name: str, profile: Profile, method: str, seed: int, train_path: Path,
            test_path: Path, work_dir: Path, run_file: Path,
            extra_fields: Optional[Dict[str, Any]] = None, resume: bool = False,
            curves: Sequence[str] = (), config: Optional[Tuple[Path, str]] = None,
            base_overrides: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Pretrains one (method, seed) through the plugin's pretraining command, evaluates it and
    writes its result file (with ``extra_fields`` added, e.g. another benchmark's name).

    ``resume``: an interrupted pretraining continues from its last epoch checkpoint (the host's
    AutoResumer) instead of starting again. ``curves``: further logged metrics whose per-epoch
    values go into the result file (``<metric>_per_epoch``). ``config``, ``base_overrides``:
    another method's config, see ``pretrain_config``."""
    import torch

    from solo_scaca.cli.pretrain import pretrain

    data_format = profile.data_format
    if data_format == "dali":
        try:
            import nvidia.dali  # noqa: F401
        except ImportError:
            print("[accuracy] NVIDIA DALI is not installed: using the host's image_folder "
                  "loader instead", flush=True)
            data_format = "image_folder"
    ckpt_dir = run_dir(work_dir, profile_name, method, seed)
    if not resume:
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # an unfinished run starts again
    cfg = pretrain_config(profile, method, seed, train_path, ckpt_dir, data_format, config,
                          base_overrides)
    if resume:  # across invocations too: any age of checkpoint of this run's folder
        from omegaconf import OmegaConf

        OmegaConf.update(cfg, "auto_resume", {"enabled": True, "max_hours": 24 * 365},
                         force_add=True)
    label = f"{method} seed {seed}"
    start = time.time()
    watcher = EpochWatcher(ckpt_dir, label, profile.epochs, start)
    watcher.start()
    try:
        ckpt = pretrain(cfg)
    finally:
        watcher.done.set()
        watcher.join()
    watcher.poll()
    pretrain_s = time.time() - start
    if resume and (ckpt is None or not Path(ckpt).exists()):  # resumed after its last epoch
        done = sorted(ckpt_dir.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
        ckpt = str(done[-1]) if done else None
    if ckpt is None or not Path(ckpt).exists():
        raise RuntimeError(f"{label}: the pretraining wrote no checkpoint under {ckpt_dir}")
    print(f"[accuracy] {label}: pretrained in {pretrain_s:.0f} s, evaluating", flush=True)
    eval_start = time.time()
    accuracies = evaluate(ckpt, profile, train_path, test_path, seed)
    eval_s = time.time() - eval_start
    steps = profile.epochs * (accuracies["train_images"] // profile.batch_size)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    result = {
        "benchmark": "accuracy", "profile": profile_name, "method": method, "seed": seed,
        **accuracies,
        "pretrain_s": pretrain_s, "eval_s": eval_s, "wall_s": pretrain_s + eval_s,
        "swav_loss_per_epoch": swav_loss_curve(ckpt_dir),
        **{f"{key}_per_epoch": metric_curve(ckpt_dir, f"{key}_epoch") for key in curves},
        # the host's loader drops the last incomplete batch
        "pretrain_steps": steps, "s_per_step": pretrain_s / max(1, steps),
        "checkpoint": str(ckpt), "data_format": data_format, "device": device,
        "train_path": str(train_path), "test_path": str(test_path),
        "settings": settings_of(profile),
        **metadata(),
        **(extra_fields or {}),
    }
    write_run_file(run_file, result)
    return result


def write_run_file(path: Path, result: Dict[str, Any]) -> None:
    """Writes a run's result file whole or not at all (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.rename(path)


RUN_NOTES = ("One row per pretraining run. Times in seconds of wall clock: `pretrain_s` includes "
             "the start-up (model, data loaders), `s_per_step` = pretrain_s / pretrain_steps, "
             "`eval_s` = features, k-NN and linear classifier. Accuracies in %. "
             "`swav_loss_last`: the SwAV loss of the last epoch (Lightning's log); "
             "`ln_prototypes` = ln K, the loss of uniform predictions over the K prototypes; "
             f"`plateau` = yes when the last loss is within {PLATEAU_NATS} of ln K: the projector "
             "collapsed to an output that does not depend on the image, the run did not learn.")


def draw_masks(run: Dict[str, Any], run_file: Path, out: Path, tag: str,
               rows: int = 6) -> bool:
    """``out``: the masks (or LEWEL's maps) of a run's checkpoint on 64 of its test images
    (``solo-scaca-masks``), unless ``out`` is newer than the run file; said and skipped where
    the checkpoint is not on this machine. True when drawn."""
    from solo_scaca.cli.masks import main as masks_main

    if out.exists() and out.stat().st_mtime >= run_file.stat().st_mtime:
        return False
    if not Path(run["checkpoint"]).exists():
        print(f"[{tag}] masks of {out.stem}: checkpoint {run['checkpoint']} is not here, not "
              "drawn", flush=True)
        return False
    masks_main(["--ckpt", run["checkpoint"], "--images", run["test_path"], "--out", str(out),
                "--n", str(rows), "--batch", "64"])
    return True
