"""What the plugin adds to the host, in one table (``REGISTERED``): the ``*_scaca`` methods and
the ``*_lewel`` positive controls in the host's method registry (``solo.methods.METHODS``), the
CA loss terms under ``solo.losses``; and ``register``, which puts them there."""

import warnings
from typing import Any, Dict

import solo.losses
import solo.methods

from solo_scaca.addon.losses import ca_loss_func, simclr_ca_loss_func
from solo_scaca.methods.byol_lewel import BYOLLEWEL
from solo_scaca.methods.byol_scaca import BYOLSCACA
from solo_scaca.methods.deepclusterv2_scaca import DeepClusterV2SCACA
from solo_scaca.methods.dino_scaca import DINOSCACA
from solo_scaca.methods.simclr_scaca import SimCLRSCACA
from solo_scaca.methods.swav_lewel import SwAVLEWEL
from solo_scaca.methods.swav_scaca import SwAVSCACA

METHOD_NAME = "swav_scaca"  # the paper's method

# host registry -> name -> what is registered under it. A method's host method is its name
# without "_scaca" (the add-on) or "_lewel" (LEWEL, docs/method.md "LEWEL (positive control)");
# the losses are the CA terms that are not a host loss function called as is.
REGISTERED: Dict[str, Dict[str, Any]] = {
    "solo.methods.METHODS": {cls.NAME: cls for cls in (
        SwAVSCACA, DeepClusterV2SCACA, DINOSCACA, BYOLSCACA, SimCLRSCACA, BYOLLEWEL, SwAVLEWEL)},
    "solo.losses": {"swav_scaca_loss_func": ca_loss_func,
                    "simclr_scaca_loss_func": simclr_ca_loss_func},
}
PLUGIN_METHODS = REGISTERED["solo.methods.METHODS"]
SCACA_METHODS = {k: v for k, v in PLUGIN_METHODS.items() if k.endswith("_scaca")}
LEWEL_METHODS = {k: v for k, v in PLUGIN_METHODS.items() if k.endswith("_lewel")}


def register() -> None:
    """Adds every entry of ``REGISTERED`` to its host registry.

    Idempotent; an entry the host (or anybody else) already holds under these names is kept,
    with a warning, never replaced.
    """
    registries = {"solo.methods.METHODS": solo.methods.METHODS, "solo.losses": vars(solo.losses)}
    for registry, entries in REGISTERED.items():
        for name, obj in entries.items():
            current = registries[registry].setdefault(name, obj)
            if current is not obj:
                warnings.warn(f"solo-scaca: '{name}' is already registered ({current!r}); "
                              "kept it")
