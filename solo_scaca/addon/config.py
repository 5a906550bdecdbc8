"""The add-on's settings (``cfg.method_kwargs.ca_*``): one table of every key with its default and
allowed values, and the checks that turn a bad value into an error naming the key and the
allowed values at config time."""

import dataclasses
import numbers
from typing import Any, Callable, Dict, Tuple, Union

import omegaconf
from solo.utils.misc import omegaconf_select

from solo_scaca.addon.cross_attention import KEY_MODES, MASK_MODES, RESPONSE_MODES
from solo_scaca.addon.objectives import OBJECTIVES
from solo_scaca.addon.pairing import PAIRING_MODES

Default = Union[Any, Callable[[omegaconf.DictConfig], Any]]  # a value, or one of the config


@dataclasses.dataclass(frozen=True)
class Choice:
    default: Default
    allowed: Tuple[Any, ...]

    def check(self, value: Any) -> bool:
        return value in self.allowed

    def describe(self) -> str:
        return str(self.allowed)


@dataclasses.dataclass(frozen=True)
class Number:
    default: Default
    low: float = 0
    strict: bool = False  # value > low (else >= low)
    integer: bool = False

    def check(self, value: Any) -> bool:
        kind = numbers.Integral if self.integer else numbers.Real
        if not isinstance(value, kind) or isinstance(value, bool):
            return False
        return value > self.low if self.strict else value >= self.low

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        return f"{kind} {'>' if self.strict else '>='} {self.low}"


@dataclasses.dataclass(frozen=True)
class Flag(Choice):
    def describe(self) -> str:
        return "True and False"


Spec = Union[Choice, Number]
FLAG = Flag(False, (True, False))

# every CA key of the add-on and its default; a method's class may replace entries (its
# pairings, the ramp's default) or add keys (SwAV's partner term)
CA_SCHEMA: Dict[str, Spec] = {
    "ca_pairing": Choice("prototype", PAIRING_MODES),
    "ca_objective": Choice("self", OBJECTIVES),
    "ca_weight": Number(1.0),
    "ca_dim": Number(128, strict=True, integer=True),
    "ca_attn_temperature": Number(0.1, strict=True),
    "ca_mask_temperature": Number(0.1, strict=True),
    "ca_warmup_epochs": Number(0.0),
    "ca_gather_partners": FLAG,
    "ca_mask": Choice("cross", MASK_MODES),
    "ca_keys": Choice("learned", KEY_MODES),
    "ca_response": Choice("logsumexp", RESPONSE_MODES),
    # ca_objective=complement: weights of the background penalty and of the area prior
    "ca_bg_weight": Number(1.0),
    "ca_area_weight": Number(0.1),
    # the mechanism metrics (and their probe masks) every N training steps: Lightning's own
    # logging interval by default, so nothing is computed that is not logged
    "ca_metrics_every": Number(lambda cfg: omegaconf_select(cfg, "log_every_n_steps", 50), 1,
                               integer=True),
}


def check_value(cfg: omegaconf.DictConfig, key: str, spec: Spec, owner: str = "") -> None:
    """Raises ValueError naming ``method_kwargs.<key>`` and the allowed values."""
    value = cfg.method_kwargs[key]
    if not spec.check(value):
        where = f" for {owner}" if owner else ""
        raise ValueError(f"method_kwargs.{key}={value!r} is invalid{where}: allowed values are "
                         f"{spec.describe()}")


def check_number(cfg: omegaconf.DictConfig, key: str, low: float, strict: bool,
                 integer: bool) -> None:
    """A clear error naming ``method_kwargs.<key>`` and the allowed numbers."""
    check_value(cfg, key, Number(None, low, strict, integer))


def apply_schema(cfg: omegaconf.DictConfig, schema: Dict[str, Spec], owner: str) -> None:
    """Fills every key's default and checks every value; a ``ca_*`` key the schema lacks is an
    error naming the allowed keys."""
    unknown = [k for k in cfg.method_kwargs if k.startswith("ca_") and k not in schema]
    if unknown:
        raise ValueError(f"unknown method_kwargs {unknown} for {owner}: allowed CA keys are "
                         f"{tuple(schema)}")
    for key, spec in schema.items():
        default = spec.default(cfg) if callable(spec.default) else spec.default
        cfg.method_kwargs[key] = omegaconf_select(cfg, f"method_kwargs.{key}", default)
        check_value(cfg, key, spec, owner)
    kwargs = cfg.method_kwargs
    if kwargs.ca_response == "contrast" and kwargs.ca_objective not in ("self", "self_masked"):
        raise ValueError(f"method_kwargs.ca_response='contrast' is invalid with "
                         f"ca_objective={kwargs.ca_objective!r}: allowed with ca_objective "
                         "'self' or 'self_masked'")
    batch_size = cfg.optimizer.batch_size
    if not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"optimizer.batch_size={batch_size!r} is invalid for {owner}: it pairs "
                         "images within each process's batch, so allowed values are integers "
                         ">= 2")
