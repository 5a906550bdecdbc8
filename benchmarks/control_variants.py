"""The controls campaign's variants, metrics and profiles (``benchmarks/controls.py`` runs them,
``benchmarks/controls_tables.py`` tabulates them, ``benchmarks/attention.py`` picks from them)."""

import dataclasses
from collections import OrderedDict
from typing import Dict, Tuple

from benchmarks import profiles

RUNS_DIR = "control_runs"
RANDOM_INIT = "random init"
SWAV, DEFAULT, UNIFORM = "swav", "swav_scaca (default)", "ca_mask=uniform"
# variant -> (method, method_kwargs overrides, seeds it gets by default: the first N of the
# profile's). The mechanism metrics below exist only for swav_scaca variants.
VARIANTS: "OrderedDict[str, Tuple[str, Tuple[str, ...], int]]" = OrderedDict([
    (SWAV, ("swav", (), 3)),
    (DEFAULT, ("swav_scaca", (), 3)),
    (UNIFORM, ("swav_scaca", ("method_kwargs.ca_mask=uniform",), 3)),
    ("ca_pairing=random", ("swav_scaca", ("method_kwargs.ca_pairing=random",), 1)),
    ("ca_keys=features", ("swav_scaca", ("method_kwargs.ca_keys=features",), 1)),
    # candidates for a mask that attends (benchmarks/attention.py): one seed each at first
    ("ca_response=mean", ("swav_scaca", ("method_kwargs.ca_response=mean",), 1)),
    ("ca_response=contrast", ("swav_scaca", ("method_kwargs.ca_response=contrast",), 1)),
    ("ca_mask_temperature=0.02", ("swav_scaca", ("method_kwargs.ca_mask_temperature=0.02",), 1)),
    ("ca_keys=features, ca_response=mean", (
        "swav_scaca", ("method_kwargs.ca_keys=features", "method_kwargs.ca_response=mean"), 1)),
    # the best alive candidate at seed 0 (attention.md): 3 seeds
    ("ca_keys=features, ca_mask_temperature=0.02", (
        "swav_scaca", ("method_kwargs.ca_keys=features",
                       "method_kwargs.ca_mask_temperature=0.02"), 3)),
    ("ca_partner_weight=1.0", ("swav_scaca", ("method_kwargs.ca_partner_weight=1.0",), 1)),
])
MECHANISM = (
    ("train_ca_mask_entropy", "entropy"),
    ("train_ca_mask_peak", "peak"),
    ("train_ca_mask_to_uniform", "to_uniform"),
    ("train_ca_partner_sensitivity", "sensitivity"),
    ("train_ca_partner_same_prototype", "same_proto"),
    ("train_ca_partner_same_class", "same_class"),
)
CURVES = tuple(key for key, _ in MECHANISM) + ("train_ca_loss",)
SPATIAL_AUGMENTATION = (
    "augmentations.0.color_jitter.brightness=0.4", "augmentations.0.color_jitter.contrast=0.4",
    "augmentations.0.color_jitter.saturation=0.4", "augmentations.0.color_jitter.hue=0.1",
    "augmentations.0.gaussian_blur.prob=0.0", "augmentations.0.rrc.crop_min_scale=0.2",
)

# a CPU probe of the host's own main_pretrain.py (swav, 8 epochs: kNN-20 37.4% against
# 29.9% at random init, on an Intel Xeon at ~90 s per epoch; the AMD EPYC machines take
# about twice that)
CPU = dataclasses.replace(
    profiles.PROFILES["cpu"],  # the accuracy profile's schedule and evaluation, and:
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
PROFILES: Dict[str, profiles.Profile] = {
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
