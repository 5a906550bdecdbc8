"""Accuracy of swav_scaca against the host's swav on the real CIFAR-10: both methods pretrained
with identical settings, budget and seeds through the plugin's pretraining command
(``solo_scaca.cli.pretrain.pretrain`` on a config composed from the shipped
``scripts/pretrain/custom/swav_scaca.yaml``), then each backbone evaluated on the test split with
the host's weighted k-NN classifier (k=20 and k=200, cosine) and the host's ``LinearModel``.

    python3 -m benchmarks accuracy --profile cpu    # ~75 min on 2 CPU cores (see PROFILES)
    python3 -m benchmarks accuracy --profile gpu    # ~9 min on one H100 (estimate)
    python3 -m benchmarks accuracy --profile tiny   # seconds: what CI runs

Each run (method, seed) writes ``<out>/<profile>/runs/<method>-seed<seed>.json``; a rerun skips
the runs whose file exists, so an interrupted suite resumes where it stopped (an unfinished run
starts again from scratch, so that every run is one uninterrupted training). The tables
(``accuracy.md/.csv``, ``accuracy_runs.md/.csv``) and ``accuracy.png`` are rebuilt from the
run files at the end of every invocation.

Data: the tarballs of ``shared/data/cifar10`` are checked against their sha256 and extracted once
into ``--data-root`` (default ``~/.cache/solo-scaca/cifar10``); a training subset is a folder of
symlinks (first N files per class, sorted by name) that the host's ``data.dataset=custom``
ImageFolder reads.
"""

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks.common import RESULTS, metadata, write_table

REPO = Path(__file__).resolve().parent.parent
PRETRAIN_CONFIG_DIR = REPO / "scripts" / "pretrain" / "custom"
LINEAR_CONFIG_DIR = REPO / "scripts" / "linear" / "custom"
METHODS = ("swav", "swav_scaca")
METRICS = (("knn20_top1", "kNN-20 top-1"), ("knn200_top1", "kNN-200 top-1"),
           ("linear_top1", "linear top-1"))
CIFAR10_SHA256 = {
    "train.tar.gz": "bb033266dbb26aa71223ff120c0df4e7d3943dbd93b9e65984876854c6234931",
    "test.tar.gz": "7c54dfb40a3e53a212021475ac995e181b0a5f595c1fca0bbfa89c5bd6dda8f6",
}
# the sha256 of each dataset's tarballs; CIFAR-100 is layout-ready (train/<class>/,
# test/<class>/ tarballs or folders) but has no copy here to pin its checksums from
CHECKSUMS: Dict[str, Dict[str, str]] = {"cifar10": CIFAR10_SHA256, "cifar100": {}}
DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def shared_data_dir() -> Path:
    """The project's shared data folder: ``$SOLO_SCACA_SHARED_DATA``, else ``../shared/data``
    beside the repository root."""
    return Path(os.environ.get("SOLO_SCACA_SHARED_DATA", REPO.parent / "shared" / "data"))


# CIFAR-10's; another dataset's (--dataset) is its sibling folder
DEFAULT_DATA_ROOT = Path("~/.cache/solo-scaca/cifar10").expanduser()
DEFAULT_WORK_DIR = Path("~/.cache/solo-scaca/benchmark-runs").expanduser()


def results_folder(profile_name: str, dataset: str) -> str:
    """A suite's folder under the results: the profile's name (``-<dataset>`` beside CIFAR-10)."""
    return profile_name if dataset == "cifar10" else f"{profile_name}-{dataset}"


@dataclasses.dataclass(frozen=True)
class Profile:
    """Everything that sizes a suite. Both methods get exactly the same settings."""

    why: str                        # how the size was chosen (goes into the table notes)
    seeds: Tuple[int, ...]
    epochs: int
    train_per_class: Optional[int]  # None: the whole training split (5000 per class)
    test_per_class: Optional[int]   # None: the whole test split (1000 per class)
    crop_size: int
    batch_size: int
    lr: float                       # before the host's batch_size / 256 scaling
    warmup_epochs: int
    num_prototypes: int
    queue_size: int
    epoch_queue_starts: int
    freeze_prototypes_epochs: int
    data_format: str                # "image_folder" or "dali" (falls back to image_folder)
    num_workers: int
    linear_epochs: int
    linear_batch_size: int
    eval_batch_size: int
    extra: Tuple[str, ...] = ()     # further Hydra overrides, same for both methods
    backbone: str = "resnet18"      # the host's backbone.name

    def pretrain_overrides(self) -> List[str]:
        """Hydra overrides of the shipped custom-dataset config (before data paths and seed)."""
        return [
            f"backbone.name={self.backbone}",
            f"augmentations.0.crop_size={self.crop_size}",
            f"optimizer.batch_size={self.batch_size}",
            f"optimizer.lr={self.lr}",
            f"++scheduler.warmup_epochs={self.warmup_epochs}",
            f"max_epochs={self.epochs}",
            f"method_kwargs.num_prototypes={self.num_prototypes}",
            f"method_kwargs.queue_size={self.queue_size}",
            f"method_kwargs.epoch_queue_starts={self.epoch_queue_starts}",
            f"method_kwargs.freeze_prototypes_epochs={self.freeze_prototypes_epochs}",
            f"method_kwargs.ca_warmup_epochs={self.freeze_prototypes_epochs}",
            f"data.format={self.data_format}",
            f"data.num_workers={self.num_workers}",
            "data.val_path=null",  # no online validation: the evaluation below is the measure
            # one device, no DDP (the shipped config asks for 2 GPUs); CPU settings are applied
            # by the pretraining command itself when there is no CUDA device
            "devices=[0]", "strategy=auto", "sync_batchnorm=False",
            "wandb.enabled=False", "auto_resume.enabled=False",
            "checkpoint.enabled=True", "checkpoint.frequency=1",
            *self.extra,
        ]


PROFILES: Dict[str, Profile] = {
    # 2-core CPU, about 75 minutes for 6 runs. Measured on this 2-core machine while it was
    # quiet (session 3 probe, swav, 8 epochs): 74-88 s per epoch (62 steps), 623 s of
    # pretraining, ~25 s of evaluation on 1000 test images (~70 s on all 10000); swav_scaca's
    # step is ~7% longer. 3 x (623 + 70) + 3 x (670 + 70) = ~4300 s = ~72 min.
    "cpu": Profile(
        why=("6 runs (2 methods x 3 seeds) in about 75 min on 2 CPU cores: 8 epochs of a "
             "2000-image subset (200 per class, 62 steps of 2 x 32 crops at 64 px: layer4 is "
             "2x2) take ~10.5 min per run here, the evaluation (features of 2000 + 10000 "
             "images, k-NN, 100 linear epochs on cached features) ~70 s. The small batch gets "
             "fewer prototypes (100) and a short queue (15 batches, from epoch 2), as SwAV does "
             "for small batches. Augmentation milder than the shipped ImageNet recipe (colour "
             "jitter 0.4/0.4/0.4/0.1 instead of 0.8/0.8/0.8/0.2, no blur, crops of at least 30% "
             "of the image): with the shipped recipe the SwAV loss of both methods stayed at "
             "ln K (collapse) at this budget; 17 probes in NOTES.md, only a milder "
             "augmentation left ln K."),
        seeds=(0, 1, 2), epochs=8, train_per_class=200, test_per_class=None, crop_size=64,
        batch_size=32, lr=0.6, warmup_epochs=1, num_prototypes=100, queue_size=480,
        epoch_queue_starts=2, freeze_prototypes_epochs=1, data_format="image_folder",
        num_workers=2, linear_epochs=100, linear_batch_size=256, eval_batch_size=256,
        extra=("augmentations.0.color_jitter.brightness=0.4",
               "augmentations.0.color_jitter.contrast=0.4",
               "augmentations.0.color_jitter.saturation=0.4",
               "augmentations.0.color_jitter.hue=0.1",
               "augmentations.0.gaussian_blur.prob=0.0",
               "augmentations.0.rrc.crop_min_scale=0.3"),
    ),
    # one H100, about 9 minutes for 6 runs (an estimate: not run here, no GPU). ResNet-18 with
    # the ImageNet stem at 64 px is ~0.15 GFLOPs per crop, about a quarter of the CIFAR stem at
    # 32 px; 2 x 50k crops per epoch decoded by DALI on the GPU: ~6 s per epoch with Lightning's
    # per-step overhead, ~30 s start-up and ~15 s evaluation per run.
    "gpu": Profile(
        why=("6 runs (2 methods x 3 seeds) in about 9 min on one H100 (estimated, not measured: "
             "no GPU where this was written): ~6 s per epoch of 50k images (2 crops at 64 px, "
             "DALI decoding on the GPU, 196 steps of 256), 8 epochs = ~50 s, plus ~30 s "
             "start-up and ~15 s evaluation per run. Host settings of the shipped custom config "
             "(LARS, warmup_cosine, 3000 prototypes, queue 3840), the queue from epoch 2 and "
             "prototypes frozen for 1 epoch to fit the short schedule. If the GPU is faster "
             "than estimated, rerun with `--epochs N` (into another `--out`)."),
        seeds=(0, 1, 2), epochs=8, train_per_class=None, test_per_class=None, crop_size=64,
        batch_size=256, lr=0.6, warmup_epochs=1, num_prototypes=3000, queue_size=3840,
        epoch_queue_starts=2, freeze_prototypes_epochs=1, data_format="dali", num_workers=12,
        linear_epochs=30, linear_batch_size=1024, eval_batch_size=512,
        extra=("precision=16-mixed",),
    ),
    # what CI runs: the same code, a few images, 1 epoch, 1 seed
    "tiny": Profile(
        why="CI check of the code path only: the numbers mean nothing.",
        seeds=(0,), epochs=1, train_per_class=8, test_per_class=4, crop_size=64, batch_size=16,
        lr=0.6, warmup_epochs=0, num_prototypes=10, queue_size=32, epoch_queue_starts=0,
        freeze_prototypes_epochs=0, data_format="image_folder", num_workers=1, linear_epochs=2,
        linear_batch_size=16, eval_batch_size=64,
    ),
}


# ---------------------------------------------------------------------------------------- data
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_cifar(data_root: Path, source: Path,
                  checksums: Dict[str, str] = CIFAR10_SHA256) -> Path:
    """``data_root/{train,test}``: extracted once from ``source/{train,test}.tar.gz`` after their
    sha256 is checked (said when ``checksums`` has none for it). A split folder that exists is
    used as it is (extraction goes to a temporary folder that is renamed only when complete)."""
    data_root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        if (data_root / split).is_dir():
            continue
        tarball = source / f"{split}.tar.gz"
        if not tarball.exists():
            raise FileNotFoundError(
                f"{data_root / split} is missing and so is {tarball} to extract it from: pass "
                f"--cifar-dir (the folder of the dataset's train.tar.gz and test.tar.gz) or set "
                f"SOLO_SCACA_SHARED_DATA to the project's shared/data folder")
        if tarball.name in checksums:
            print(f"[accuracy] checking sha256 of {tarball}", flush=True)
            got = sha256(tarball)
            if got != checksums[tarball.name]:
                raise ValueError(f"{tarball}: sha256 {got} differs from the expected "
                                 f"{checksums[tarball.name]}")
        else:
            print(f"[accuracy] no pinned sha256 for {tarball}: not checked", flush=True)
        tmp = data_root / f".extracting-{split}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        print(f"[accuracy] extracting {tarball} into {data_root}", flush=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        if not (tmp / split).is_dir():
            raise ValueError(f"{tarball} has no top-level {split}/ folder")
        (tmp / split).rename(data_root / split)
        shutil.rmtree(tmp)
    return data_root


def sample_cifar(source: Path, dest: Path, train_per_class: int, test_per_class: int,
                 checksums: Dict[str, str] = CIFAR10_SHA256) -> Path:
    """A small CIFAR-10 data root (``dest/{train,test}/<class>/``): the first images per class
    of each tarball, after its sha256 is checked. For tests: no full extraction."""
    wanted = {"train": train_per_class, "test": test_per_class}
    for split, per_class in wanted.items():
        tarball = source / f"{split}.tar.gz"
        got = sha256(tarball)
        if got != checksums[tarball.name]:
            raise ValueError(f"{tarball}: sha256 {got} differs from the expected "
                             f"{checksums[tarball.name]}")
        counts: Dict[str, int] = {}
        with tarfile.open(tarball) as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) != 3 or parts[0] != split:
                    continue
                if counts.get(parts[1], 0) >= per_class:
                    continue
                counts[parts[1]] = counts.get(parts[1], 0) + 1
                tar.extract(member, dest, filter="data")
    return dest


def class_subset(split_dir: Path, per_class: Optional[int], dest: Path) -> Path:
    """A folder of symlinks to the first ``per_class`` images (sorted names) of every class of
    ``split_dir``: stratified and deterministic. ``per_class=None`` returns ``split_dir``."""
    if per_class is None:
        return split_dir
    if dest.is_dir():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    classes = sorted(p for p in split_dir.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{split_dir} has no class folders")
    for cls in classes:
        files = sorted(f for f in cls.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        if len(files) < per_class:
            raise ValueError(f"{cls} has {len(files)} images, fewer than the {per_class} per "
                             f"class the profile asks for")
        (tmp / cls.name).mkdir(parents=True)
        for f in files[:per_class]:
            (tmp / cls.name / f.name).symlink_to(f.resolve())
    tmp.rename(dest)
    return dest


def profile_data(profile: Profile, data_root: Path, source: Path,
                 dataset: str = "cifar10") -> Tuple[Path, Path]:
    """The training and test folders of a profile: the dataset extracted once from ``source``
    (``prepare_cifar``), then its per-class subsets (``class_subset``)."""
    prepare_cifar(data_root, source, CHECKSUMS[dataset])
    subsets = data_root / "subsets"
    return (class_subset(data_root / "train", profile.train_per_class,
                         subsets / f"train-{profile.train_per_class}pc"),
            class_subset(data_root / "test", profile.test_per_class,
                         subsets / f"test-{profile.test_per_class}pc"))


# ------------------------------------------------------------------------------------- configs
def pretrain_config(profile: Profile, method: str, seed: int, train_path: Path,
                    ckpt_dir: Path, data_format: str):
    """The composed pretraining config: the shipped ``scripts/pretrain/custom/swav_scaca.yaml``
    with the profile's overrides; ``method=swav`` for the baseline, everything else equal (the
    host's SwAV ignores the ``ca_*`` keys of ``method_kwargs``)."""
    import torch
    from hydra import compose, initialize_config_dir

    overrides = [
        f"method={method}",
        f"name=bench-{method}-seed{seed}",
        *profile.pretrain_overrides(),
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
    with initialize_config_dir(config_dir=str(PRETRAIN_CONFIG_DIR), version_base="1.2"):
        return compose("swav_scaca", overrides=overrides)


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

    from solo_scaca.host.export import load_backbone
    from solo_scaca.host.knn import extract_features, image_folder_loader, knn_accuracy

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


# --------------------------------------------------------------------------------------- runs
# within this many nats of ln(num_prototypes), the SwAV loss is that of uniform predictions
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


class EpochWatcher(threading.Thread):
    """Prints a line when a new epoch checkpoint appears (the host's Checkpointer writes one per
    epoch): progress without adding a callback to the pretraining command."""

    def __init__(self, ckpt_dir: Path, label: str, epochs: int, start: float):
        super().__init__(daemon=True)
        self.ckpt_dir, self.label, self.epochs, self.t0 = ckpt_dir, label, epochs, start
        self.done = threading.Event()
        self.seen = -1

    def poll(self) -> None:
        done = [int(p.stem.rsplit("-ep=", 1)[1]) for p in self.ckpt_dir.rglob("*-ep=*.ckpt")
                if p.stem.rsplit("-ep=", 1)[1].isdigit()]
        if done and max(done) > self.seen:
            self.seen = max(done)
            print(f"[accuracy] {self.label}: epoch {self.seen + 1}/{self.epochs} done "
                  f"({time.time() - self.t0:.0f} s)", flush=True)

    def run(self) -> None:
        while not self.done.wait(2.0):
            self.poll()


def settings_of(profile: Profile) -> Dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(profile).items() if k != "why"}


# fields added to Profile later, with the value that run files written before them had
LATER_FIELDS = {f.name: f.default for f in dataclasses.fields(Profile)
                if f.default is not dataclasses.MISSING and f.name != "extra"}


def same_settings(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    """Whether run files of settings ``a`` and ``b`` belong in one table: every setting but the
    seed list equal, so that a later ``--seeds`` adds runs to a suite instead of refusing it."""
    return ({k: v for k, v in {**LATER_FIELDS, **a}.items() if k != "seeds"}
            == {k: v for k, v in {**LATER_FIELDS, **b}.items() if k != "seeds"})


def run_one(profile_name: str, profile: Profile, method: str, seed: int, train_path: Path,
            test_path: Path, work_dir: Path, run_file: Path,
            extra_fields: Optional[Dict[str, Any]] = None, resume: bool = False,
            curves: Sequence[str] = ()) -> Dict[str, Any]:
    """Pretrains one (method, seed) through the plugin's pretraining command, evaluates it and
    writes its result file (with ``extra_fields`` added, e.g. another benchmark's name).

    ``resume``: an interrupted pretraining continues from its last epoch checkpoint (the host's
    AutoResumer) instead of starting again. ``curves``: further logged metrics whose per-epoch
    values go into the result file (``<metric>_per_epoch``)."""
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
    ckpt_dir = work_dir / profile_name / f"{method}-seed{seed}"
    if not resume:
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # an unfinished run starts again
    cfg = pretrain_config(profile, method, seed, train_path, ckpt_dir, data_format)
    if resume:  # across sessions too: any age of checkpoint of this run's folder
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


# ------------------------------------------------------------------------------------ tables
def mean_std(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


# two-sided 95% critical values of Student's t for 1..10 degrees of freedom (without scipy)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t_critical(df: int) -> float:
    """Two-sided 95% critical value of Student's t with ``df`` degrees of freedom."""
    try:
        from scipy.stats import t
    except ImportError:
        return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df
    return float(t.ppf(0.975, df))


def summary_rows(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One row per metric: mean and std over seeds of each method, the difference
    swav_scaca - swav, and whether it exceeds the seed noise (two-sample t-test at 5%)."""
    rows = []
    for key, label in METRICS:
        values = {m: [r[key] for r in runs if r["method"] == m] for m in METHODS}
        row: Dict[str, Any] = {"metric": label}
        stats = {}
        for m in METHODS:
            if values[m]:
                stats[m] = mean_std(values[m])
                row[f"{m}_mean"] = stats[m][0]
                row[f"{m}_std"] = stats[m][1] if stats[m][1] is not None else "n/a"
            row[f"{m}_n"] = len(values[m])
        row["n_seeds"] = "/".join(str(len(values[m])) for m in METHODS)
        if len(stats) < 2:
            row.update(diff="n/a", threshold="n/a", exceeds_noise="n/a (a method has no runs)")
            rows.append(row)
            continue
        (ma, sa), (mb, sb) = stats["swav"], stats["swav_scaca"]
        na, nb = len(values["swav"]), len(values["swav_scaca"])
        row["diff"] = mb - ma
        if sa is None or sb is None:
            row.update(threshold="n/a", exceeds_noise="n/a (1 seed)")
        else:
            df = na + nb - 2
            pooled = math.sqrt(((na - 1) * sa ** 2 + (nb - 1) * sb ** 2) / df)
            threshold = t_critical(df) * pooled * math.sqrt(1 / na + 1 / nb)
            row["threshold"] = threshold
            row["exceeds_noise"] = "yes" if abs(row["diff"]) > threshold else "no"
        rows.append(row)
    return rows


SUMMARY_COLUMNS = ["metric", "swav_mean", "swav_std", "swav_scaca_mean", "swav_scaca_std",
                   "n_seeds", "diff", "threshold", "exceeds_noise"]
RUN_COLUMNS = ["method", "seed", "knn20_top1", "knn200_top1", "linear_top1", "knn20_top5",
               "linear_top5", "swav_loss_last", "ln_prototypes", "plateau", "train_images",
               "test_images", "pretrain_steps", "s_per_step",
               "pretrain_s", "eval_s", "wall_s", "device", "data_format", "checkpoint"]

RUN_NOTES = ("One row per pretraining run. Times in seconds of wall clock: `pretrain_s` includes "
             "the start-up (model, data loaders), `s_per_step` = pretrain_s / pretrain_steps, "
             "`eval_s` = features, k-NN and linear classifier. Accuracies in %. "
             "`swav_loss_last`: the SwAV loss of the last epoch (Lightning's log); "
             "`ln_prototypes` = ln K, the loss of uniform predictions over the K prototypes; "
             f"`plateau` = yes when the last loss is within {PLATEAU_NATS} of ln K: the projector "
             "collapsed to an output that does not depend on the image, the run did not learn.")


def plot(rows: List[Dict[str, Any]], path: Path, title: str,
         dataset: str = "CIFAR-10") -> Optional[Path]:
    """Bar chart of mean +- std per method and metric; None (said) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[accuracy] matplotlib is not installed (pip install matplotlib): no plot",
              flush=True)
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.38
    for i, method in enumerate(METHODS):
        means = [r.get(f"{method}_mean", float("nan")) for r in rows]
        stds = [r.get(f"{method}_std") for r in rows]
        stds = [s if isinstance(s, float) else 0.0 for s in stds]
        xs = [j + (i - 0.5) * width for j in range(len(rows))]
        bars = ax.bar(xs, means, width, yerr=stds, capsize=4, label=method)
        ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=8)
    ax.set_xticks(range(len(rows)), [r["metric"] for r in rows])
    ax.set_ylabel(f"{dataset} test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(ncol=len(METHODS), loc="upper center", bbox_to_anchor=(0.5, -0.1),
              frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def dataset_label(runs: List[Dict[str, Any]]) -> str:
    """The runs' dataset, as written in the tables (run files before the option: CIFAR-10)."""
    return DATASET_LABELS[runs[0].get("dataset", "cifar10")]


def notes(profile_name: str, profile: Profile, runs: List[Dict[str, Any]]) -> str:
    def one(values):
        values = sorted({str(v) for v in values})
        return values[0] if len(values) == 1 else " / ".join(values)

    def per_class(n):
        return "the whole split" if n is None else f"{n} per class, the first by file name"
    grid = profile.crop_size // 32
    lines = [
        f"Profile `{profile_name}`: {profile.why}",
        "",
        f"- Data: real {dataset_label(runs)} (32 px JPEG). Training: "
        f"{one(r['train_images'] for r in runs)} "
        f"images ({per_class(profile.train_per_class)}), unlabelled for pretraining, labelled "
        "for the k-NN memory bank and the linear classifier. Test: "
        f"{one(r['test_images'] for r in runs)} images of the test split "
        f"({per_class(profile.test_per_class)}).",
        "- Resolution: `data.dataset=custom` gives ResNet-18 its ImageNet stem (stride-2 conv "
        "and max pool): at 32 px `layer4` would be 1x1 and the add-on would have no spatial map. "
        f"So both methods pretrain on {profile.crop_size} px crops (the host's "
        "RandomResizedCrop upsamples the 32 px images) and are evaluated at "
        f"{profile.crop_size} px (resize + centre crop); `layer4` is {grid}x{grid}.",
        "- Pretraining, identical for both methods (only `method` differs; the host's SwAV "
        "ignores the `ca_*` keys of `method_kwargs`): the plugin's pretraining command "
        "(`solo_scaca.cli.pretrain.pretrain`) on the shipped "
        "`scripts/pretrain/custom/swav_scaca.yaml` (ResNet-18, LARS, warmup_cosine, its "
        "augmentations"
        + (", overridden by " + ", ".join(f"`{o}`" for o in profile.extra)
           if profile.extra else "")
        + f"), {profile.epochs} epochs, batch {profile.batch_size}, lr "
        f"{profile.lr} x batch/256, {profile.warmup_epochs} warm-up epoch(s), "
        f"{profile.num_prototypes} prototypes, queue {profile.queue_size} from epoch "
        f"{profile.epoch_queue_starts}, prototypes frozen (and the CA weight ramped up) for "
        f"{profile.freeze_prototypes_epochs} epoch(s); loader "
        f"{one(r['data_format'] for r in runs)}; device {one(r['device'] for r in runs)}; "
        f"seeds {list(profile.seeds)} (a seed sets the initialisation and the data order, the "
        "same for both methods).",
        "- k-NN: the host's `WeightedKNNClassifier` (cosine, T=0.07), k=20 and k=200, on the "
        "backbone's pooled features, the training images as memory bank.",
        "- Linear: the host's `LinearModel` with the shipped "
        "`scripts/linear/custom/swav_scaca.yaml` recipe (SGD, lr 0.15 x batch/256, step decay "
        f"x0.1 at 60% and 80% of the epochs), {profile.linear_epochs} epochs, batch "
        f"{profile.linear_batch_size}, on the frozen backbone's features of the un-augmented "
        "training images, computed once (the frozen eval-mode backbone gives the same features "
        "every epoch; the host's recipe also augments the training images, this one does not).",
        "- Significance: `exceeds_noise` is `yes` when |diff| > threshold = t(0.975, n_a+n_b-2) "
        "x pooled std x sqrt(1/n_a + 1/n_b): a two-sample t-test at 5% over seeds (n/a with a "
        "single seed). `diff` = swav_scaca - swav; `n_seeds` = runs of swav / swav_scaca. "
        "Accuracies in %, std = sample std over seeds.",
    ]
    return "\n".join(lines)


def write_tables(profile_name: str, profile: Profile, out_dir: Path,
                 runs: List[Dict[str, Any]]) -> Dict[str, Path]:
    """``accuracy.{md,csv}``, ``accuracy_runs.{md,csv}`` and ``accuracy.png`` from the runs."""
    runs = sorted(runs, key=lambda r: (METHODS.index(r["method"]), r["seed"]))
    runs = [{**r, **learning_check(r.get("swav_loss_per_epoch", []), profile.num_prototypes)}
            for r in runs]
    meta = {k: runs[-1][k] for k in ("command", "commit", "machine", "versions", "date")}
    meta["runs"] = f"{len(runs)} (result files in runs/)"
    meta["wall time, all runs"] = f"{sum(r['wall_s'] for r in runs) / 60:.1f} min"
    rows = summary_rows(runs)
    text = notes(profile_name, profile, runs)
    stuck = [r for r in runs if r["plateau"] == "yes"]
    if stuck:
        text = (f"**Warning: {len(stuck)} of {len(runs)} runs ended on SwAV's plateau** (last-"
                f"epoch loss within {PLATEAU_NATS} of ln K = {math.log(profile.num_prototypes):.3f}"
                ", the loss of uniform predictions: see `accuracy_runs.md`). Such runs did not "
                "learn; their accuracies compare two untrained-like backbones, not the methods."
                "\n\n" + text)
    paths = {
        "summary": write_table("accuracy", f"Accuracy: swav_scaca against swav ({profile_name})",
                               rows, SUMMARY_COLUMNS, meta, text, out_dir),
        "runs": write_table("accuracy_runs", f"Accuracy, every run ({profile_name})", runs,
                            RUN_COLUMNS, meta, RUN_NOTES, out_dir),
    }
    seeds = sorted({r["seed"] for r in runs})
    label = dataset_label(runs)
    png = plot(rows, out_dir / "accuracy.png",
               f"{label} test, {profile_name} profile: mean ± std over seeds {seeds}", label)
    if png is not None:
        paths["plot"] = png
    return paths


def rebuild_tables(profile_dir: Path) -> Optional[Dict[str, Path]]:
    """The tables and plot of a profile folder rebuilt from its run files alone (``report``
    does this); None when the folder has no accuracy run files."""
    runs = [json.loads(p.read_text()) for p in sorted((profile_dir / "runs").glob("*.json"))]
    runs = [r for r in runs if r.get("benchmark") == "accuracy"]
    if not runs:
        return None
    name = runs[0]["profile"]
    settings = runs[0]["settings"]
    if any(not same_settings(r["settings"], settings) for r in runs):
        raise ValueError(f"{profile_dir / 'runs'} mixes run files of different settings")
    settings = {**settings, "seeds": sorted({r["seed"] for r in runs})}
    known = PROFILES.get(name)
    why = (known.why if known is not None and same_settings(settings_of(known), settings) else
           f"the settings recorded in the run files, which are not profile {name!r}'s current "
           f"ones (changed on the command line, or an earlier version of the profile: see "
           f"`settings` in the run files).")
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    return write_tables(name, Profile(why=why, **fields), profile_dir, runs)


# ---------------------------------------------------------------------------------------- main
def run_suite(profile_name: str, profile: Profile, out: Path, data_root: Path,
              cifar_dir: Path, work_dir: Path, methods: Sequence[str] = METHODS,
              dataset: str = "cifar10") -> Dict[str, Path]:
    out_dir = out / results_folder(profile_name, dataset)
    if dataset != "cifar10":
        work_dir = work_dir / dataset
    runs_dir = out_dir / "runs"
    settings = settings_of(profile)
    for run_file in sorted(runs_dir.glob("*.json")):  # every one goes into the tables
        if not same_settings(json.loads(run_file.read_text()).get("settings", {}), settings):
            raise SystemExit(
                f"{run_file} was measured with other settings than profile "
                f"{profile_name!r} has now: delete {runs_dir} (or pass another --out) to "
                f"start the suite again")
    pending = []
    for method, seed in [(m, s) for s in profile.seeds for m in methods]:
        run_file = runs_dir / f"{method}-seed{seed}.json"
        if run_file.exists():
            print(f"[accuracy] {method} seed {seed}: already done ({run_file}), skipped",
                  flush=True)
        else:
            pending.append((method, seed, run_file))
    if pending:
        if profile_name == "gpu":
            import torch

            if not torch.cuda.is_available():
                print("[accuracy] warning: profile 'gpu' without a CUDA device will take many "
                      "hours", flush=True)
        train_path, test_path = profile_data(profile, data_root, cifar_dir, dataset)
        for i, (method, seed, run_file) in enumerate(pending, 1):
            print(f"[accuracy] run {i}/{len(pending)} ({profile_name}): {method} seed {seed}, "
                  f"{profile.epochs} epoch(s): start", flush=True)
            result = run_one(profile_name, profile, method, seed, train_path, test_path,
                             work_dir, run_file, {"dataset": dataset})
            print(f"[accuracy] run {i}/{len(pending)}: {method} seed {seed}: done in "
                  f"{result['wall_s']:.0f} s: kNN-20 {result['knn20_top1']:.2f}%, kNN-200 "
                  f"{result['knn200_top1']:.2f}%, linear {result['linear_top1']:.2f}% "
                  f"-> {run_file}", flush=True)
    # the tables of every run file in the folder: seeds of earlier invocations included
    paths = rebuild_tables(out_dir)
    print(f"[accuracy] tables: {', '.join(str(p) for p in paths.values())}", flush=True)
    return paths


def parse_field(parser: argparse.ArgumentParser, profile: Profile, item: str) -> Dict[str, Any]:
    """``FIELD=VALUE`` of ``--set`` as ``{field: value}`` of the field's type."""
    key, sep, value = item.partition("=")
    fields = {f.name: f for f in dataclasses.fields(Profile) if f.name not in ("why", "extra")}
    if not sep or key not in fields:
        parser.error(f"--set takes FIELD=VALUE with FIELD one of {sorted(fields)}, got {item!r}")
    current = getattr(profile, key)
    try:
        if isinstance(current, tuple):
            return {key: tuple(int(v) for v in value.split(","))}
        if current is None or isinstance(current, int):
            return {key: None if value.lower() == "none" else int(value)}
        return {key: type(current)(value)}
    except ValueError:
        parser.error(f"--set {item!r}: {key} takes a {type(current).__name__}")


def main(argv=None) -> Dict[str, Path]:
    """Command-line entry point (also ``python3 -m benchmarks accuracy``)."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=list(PROFILES), default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="results folder (the profile's subfolder is used)")
    parser.add_argument("--dataset", choices=list(CHECKSUMS), default="cifar10",
                        help="cifar10 (default) or cifar100: same layout (train/<class>/, "
                             "test/<class>/); results of cifar100 go to <profile>-cifar100/")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="extracted dataset (train/, test/), made from --cifar-dir if absent "
                             "(default: ~/.cache/solo-scaca/<dataset>)")
    parser.add_argument("--cifar-dir", type=Path, default=None,
                        help="folder of train.tar.gz and test.tar.gz "
                             "(default: $SOLO_SCACA_SHARED_DATA/<dataset>, else "
                             "../shared/data/<dataset> beside the repository)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                        help="where the pretraining checkpoints go (outside the repository)")
    parser.add_argument("--epochs", type=int, help="override the profile's pretraining epochs")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the profile's seeds")
    parser.add_argument("--train-per-class", type=int,
                        help="override the profile's training images per class")
    parser.add_argument("--test-per-class", type=int,
                        help="override the profile's test images per class")
    parser.add_argument("--batch-size", type=int, help="override the profile's pretraining batch")
    parser.add_argument("--num-workers", type=int, help="override the profile's loader workers")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any field of the profile (e.g. lr=0.15, crop_size=32); "
                             "repeat. For tuning: results go with the changed settings")
    parser.add_argument("--override", action="append", default=[], metavar="HYDRA_OVERRIDE",
                        help="a further Hydra override of the pretraining config for both "
                             "methods (e.g. ++method_kwargs.sk_epsilon=0.02); repeat")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    for key in ("epochs", "train_per_class", "test_per_class", "batch_size", "num_workers"):
        if getattr(args, key) is not None:
            profile = dataclasses.replace(profile, **{key: getattr(args, key)})
    for item in args.set:
        profile = dataclasses.replace(profile, **parse_field(parser, profile, item))
    if args.override:
        profile = dataclasses.replace(profile, extra=profile.extra + tuple(args.override))
    if args.seeds is not None:
        profile = dataclasses.replace(profile, seeds=tuple(args.seeds))
    cifar_dir = args.cifar_dir or shared_data_dir() / args.dataset
    data_root = args.data_root or DEFAULT_DATA_ROOT.parent / args.dataset
    return run_suite(args.profile, profile, args.out, data_root.expanduser(), cifar_dir,
                     args.work_dir.expanduser(), methods=args.methods, dataset=args.dataset)


if __name__ == "__main__":
    main()
