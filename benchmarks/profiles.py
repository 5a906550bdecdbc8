"""What sizes a benchmark suite (``Profile``), every suite's profiles (``PROFILES[suite][name]``:
the ``--profile cpu|gpu|tiny`` of each benchmark), and how run files' settings are compared.

Suites: ``accuracy`` (the accuracy and ablations benchmarks), ``controls`` (controls, attention,
methods), ``clutter`` (clutter)."""

import argparse
import dataclasses
from typing import Any, Dict, List, Optional, Tuple


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
    hydra_overrides: Tuple[str, ...] = ()  # further overrides of the config, same for all runs
    backbone: str = "resnet18"      # the host's backbone.name
    clutter_min_side: int = 14      # cifar10-clutter's object sides (the clutter suite only)
    clutter_max_side: int = 22

    def pretrain_overrides(self) -> List[str]:
        """Hydra overrides of the shipped custom-dataset config (before data paths and seed)."""
        return self.generic_overrides() + [
            f"optimizer.lr={self.lr}",
            f"method_kwargs.num_prototypes={self.num_prototypes}",
            f"method_kwargs.queue_size={self.queue_size}",
            f"method_kwargs.epoch_queue_starts={self.epoch_queue_starts}",
            f"method_kwargs.freeze_prototypes_epochs={self.freeze_prototypes_epochs}",
            f"method_kwargs.ca_warmup_epochs={self.freeze_prototypes_epochs}",
            *self.hydra_overrides,
        ]

    def generic_overrides(self) -> List[str]:
        """The overrides that hold for any host method's config (no SwAV keys, no lr)."""
        return [
            f"backbone.name={self.backbone}",
            f"augmentations.0.crop_size={self.crop_size}",
            f"optimizer.batch_size={self.batch_size}",
            f"++scheduler.warmup_epochs={self.warmup_epochs}",
            f"max_epochs={self.epochs}",
            f"data.format={self.data_format}",
            f"data.num_workers={self.num_workers}",
            "data.val_path=null",  # no online validation: the evaluation below is the measure
            # one device, no DDP (the shipped config asks for 2 GPUs); CPU settings are applied
            # by the pretraining command itself when there is no CUDA device
            "devices=[0]", "strategy=auto", "sync_batchnorm=False",
            "wandb.enabled=False", "auto_resume.enabled=False",
            "checkpoint.enabled=True", "checkpoint.frequency=1",
        ]


def with_override(overrides: Tuple[str, ...], item: str) -> Tuple[str, ...]:
    """Hydra ``overrides`` with ``item`` (``key=value``) replacing any override of its key."""
    key = item.partition("=")[0]
    return (*(o for o in overrides if o.partition("=")[0] != key), item)


ACCURACY: Dict[str, Profile] = {
    # 2-core CPU, about 75 minutes for 6 runs. Measured on this 2-core machine while it was
    # quiet (a probe run of swav, 8 epochs): 74-88 s per epoch (62 steps), 623 s of
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
             "ln K (collapse) at this budget; 17 probes in cpu-shipped-augmentation/ABOUT.md, "
             "only a milder augmentation left ln K."),
        seeds=(0, 1, 2), epochs=8, train_per_class=200, test_per_class=None, crop_size=64,
        batch_size=32, lr=0.6, warmup_epochs=1, num_prototypes=100, queue_size=480,
        epoch_queue_starts=2, freeze_prototypes_epochs=1, data_format="image_folder",
        num_workers=2, linear_epochs=100, linear_batch_size=256, eval_batch_size=256,
        hydra_overrides=("augmentations.0.color_jitter.brightness=0.4",
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
        hydra_overrides=("precision=16-mixed",),
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


# the controls campaign (and the methods and attention benchmarks): an 8x8 map
SPATIAL_AUGMENTATION = (
    "augmentations.0.color_jitter.brightness=0.4", "augmentations.0.color_jitter.contrast=0.4",
    "augmentations.0.color_jitter.saturation=0.4", "augmentations.0.color_jitter.hue=0.1",
    "augmentations.0.gaussian_blur.prob=0.0", "augmentations.0.rrc.crop_min_scale=0.2",
)

# a CPU probe of the host's own main_pretrain.py (swav, 8 epochs: kNN-20 37.4% against
# 29.9% at random init, on an Intel Xeon at ~90 s per epoch; the AMD EPYC machines take
# about twice that)
CPU = dataclasses.replace(
    ACCURACY["cpu"],  # the accuracy profile's schedule and evaluation, and:
    why=("`wide_resnet28w2` at CIFAR's native 32 px: its last map (the input of the add-on) "
         "is 8x8. 5000 training images (500 per class), batch 64 (78 steps per epoch), 8 "
         "epochs, lr 0.15, 100 prototypes, no queue, prototypes frozen (and the CA weight "
         "ramped up) for 1 epoch, 1 warm-up epoch, colour jitter 0.4/0.4/0.4/0.1, no blur, "
         "crops of at least 20%: a CPU probe of the host's main_pretrain.py, under which the "
         "host's swav reached kNN-20 37.4% after 8 epochs against 29.9% at random init. "
         "About 25-30 min per run on a 2-core AMD EPYC."),
    train_per_class=500, crop_size=32, batch_size=64, lr=0.15, queue_size=0,
    epoch_queue_starts=0, hydra_overrides=SPATIAL_AUGMENTATION, backbone="wide_resnet28w2",
)
CONTROLS: Dict[str, Profile] = {
    "cpu": CPU,
    # one H200, the campaign's 11 runs (swav, default and uniform x 3 seeds, random pairing and
    # feature keys x 1: pass them as --variants, the default is every variant) side by side
    # as separate processes (--jobs 11) in one device call.
    # Measured on one (2026-11-29, benchmarks/results/gpu-h200/ABOUT.md): the data pipeline is
    # the limit, not the GPU: one run alone took 38 s per epoch of 50,000 images with two
    # loader workers (GPU under 21% busy), and 11 runs of 5 epochs kept the 16 cores 98% busy
    # for 7.3 min without finishing. Hence 3 epochs: an estimate from that attempt, not yet run.
    "gpu": dataclasses.replace(
        CPU,
        why=("The cpu profile's spatial setting (`wide_resnet28w2` at 32 px, 8x8 map, the same "
             "augmentation, prototypes and schedule shape) on the whole CIFAR-10 training "
             "split: 3 epochs of 195 steps of 256 images, lr 0.15 x 256/256, mixed precision. "
             "The runs go side by side (`--jobs 11`) on one GPU; on an H200 machine the 16 CPU "
             "cores' data pipeline is the limit (5 epochs did not fit one 9-minute call)."),
        epochs=3, train_per_class=None, batch_size=256, num_workers=2, linear_epochs=30,
        linear_batch_size=1024, eval_batch_size=1024,
        hydra_overrides=(*SPATIAL_AUGMENTATION, "precision=16-mixed"),
    ),
    # CI: the code path only
    "tiny": dataclasses.replace(
        CPU, why="CI check of the code path only: the numbers mean nothing.", seeds=(0, 1),
        epochs=1, train_per_class=8, test_per_class=4, batch_size=16, warmup_epochs=0,
        num_prototypes=10, freeze_prototypes_epochs=0, num_workers=1, linear_epochs=2,
        linear_batch_size=16, eval_batch_size=64,
    ),
}

# the clutter campaign: the controls' profiles on cifar10-clutter
CLUTTER: Dict[str, Profile] = {
    "cpu": dataclasses.replace(
        CONTROLS["cpu"],
        why=("The controls' cpu profile (`wide_resnet28w2` at 32 px, 8x8 map, batch 64, 100 "
             "prototypes, no queue, colour jitter 0.4/0.4/0.4/0.1) with crops of at least 35% "
             "(the controls take 20%) on cifar10-clutter with objects of 18-26 px (METHOD.md's "
             "set has 14-22; `solo-scaca-clutter-data`'s default), 16 epochs at SwAV's own "
             "learning rate (0.6 x 64/256). Sized by probes of swav seed 0 "
             "(results/cpu-clutter-probes/; clutter kNN-20 over random init): 14-22 px "
             "objects, 8 epochs at lr 0.15: +1.5; 14-22 px, 16 epochs at lr 0.6: +2.3; 18-26 "
             "px, 16 epochs at lr 0.6, crops of at least 20%: +3.5, and +3.8 over 3 seeds "
             "(results/cpu-clutter-crops-0.2/); with crops of at least 35% (both views more "
             "often hold the object): +5.6 (25.6% against 20.0%; one seed), and +6.1 over 3 "
             "seeds (26.1 +- 0.5), at the same cost "
             "(16 epochs of swav: 31 min of pretraining alone on a 2-core AMD EPYC, 76 min "
             "beside another run). 500 training objects per class (5000 canvases) and the "
             "10,000 test objects on their canvases; clean CIFAR-10: the first 500 training "
             "images per class and the whole test split."),
        clutter_min_side=18, clutter_max_side=26,
        epochs=16, lr=0.6, test_per_class=1000,
        hydra_overrides=with_override(SPATIAL_AUGMENTATION,
                                      "augmentations.0.rrc.crop_min_scale=0.35")),
    "tiny": dataclasses.replace(CONTROLS["tiny"], seeds=(0,), test_per_class=4),
}

# suite -> profile name -> Profile
PROFILES: Dict[str, Dict[str, Profile]] = {
    "accuracy": ACCURACY, "controls": CONTROLS, "clutter": CLUTTER,
}

def settings_of(profile: Profile) -> Dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(profile).items() if k != "why"}


# fields added to Profile later, with the value that run files written before them had
LATER_FIELDS = {f.name: f.default for f in dataclasses.fields(Profile)
                if f.default is not dataclasses.MISSING and f.name != "hydra_overrides"}
# fields renamed since run files were first written: old name -> name
RENAMED = {"extra": "hydra_overrides"}


def current_settings(settings: Dict[str, Any]) -> Dict[str, Any]:
    """A run file's settings under today's field names, later fields at their old value."""
    return {**LATER_FIELDS, **{RENAMED.get(k, k): v for k, v in settings.items()}}


def changes(profile: Profile, base: Profile) -> List[str]:
    """``FIELD=VALUE`` of every setting in which ``profile`` differs from ``base`` (seeds aside;
    Hydra overrides as themselves): what ``--set`` changed, for a table's note."""
    fields = [f.name for f in dataclasses.fields(Profile)
              if f.name not in ("why", "seeds", "hydra_overrides")]
    return ([f"{k}={getattr(profile, k)}" for k in fields
             if getattr(profile, k) != getattr(base, k)]
            + [o for o in profile.hydra_overrides if o not in base.hydra_overrides])


def profile_from_settings(settings: Dict[str, Any], why: str) -> Profile:
    """The Profile a run file's settings describe."""
    return Profile(why=why, **{k: tuple(v) if isinstance(v, list) else v
                               for k, v in current_settings(settings).items()})


def same_settings(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    """Whether run files of settings ``a`` and ``b`` belong in one table: every setting but the
    seed list equal, so that a later ``--seeds`` adds runs to a suite instead of refusing it."""
    return ({k: v for k, v in current_settings(a).items() if k != "seeds"}
            == {k: v for k, v in current_settings(b).items() if k != "seeds"})


def parse_field(parser: argparse.ArgumentParser, profile: Profile, item: str) -> Dict[str, Any]:
    """``FIELD=VALUE`` of ``--set`` as ``{field: value}`` of the field's type; a dotted key
    (``augmentations.0.rrc.crop_min_scale=0.35``) is a Hydra override of the pretraining config,
    replacing the profile's own override of that key."""
    key, sep, value = item.partition("=")
    if sep and "." in key:
        return {"hydra_overrides": with_override(profile.hydra_overrides, item)}
    fields = {f.name: f for f in dataclasses.fields(Profile) if f.name not in ("why", "hydra_overrides")}
    if not sep or key not in fields:
        parser.error(f"--set takes FIELD=VALUE with FIELD one of {sorted(fields)} or a dotted "
                     f"Hydra key, got {item!r}")
    current = getattr(profile, key)
    try:
        if isinstance(current, tuple):
            return {key: tuple(int(v) for v in value.split(","))}
        if current is None or isinstance(current, int):
            return {key: None if value.lower() == "none" else int(value)}
        return {key: type(current)(value)}
    except ValueError:
        parser.error(f"--set {item!r}: {key} takes a {type(current).__name__}")
