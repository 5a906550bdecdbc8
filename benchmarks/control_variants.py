"""The controls campaign's variants and metrics (``benchmarks/controls_runs.py`` runs them,
``benchmarks/controls_tables.py`` tabulates them, ``benchmarks/attention.py`` picks from them);
its profiles are ``PROFILES["controls"]`` of ``benchmarks/profiles.py``."""

from collections import OrderedDict
from typing import Tuple

from benchmarks.campaign import RANDOM_INIT  # noqa: F401  (the reference row of the tables)

RUNS_DIR = "control_runs"
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
