"""Registration of the ``*_scaca`` methods (and the ``*_lewel`` positive controls) in the host's
method registry (``solo.methods.METHODS``) and of their CA loss terms under ``solo.losses``."""

import warnings

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
# registry name -> class: the host method the add-on extends is the name without "_scaca"
SCACA_METHODS = {
    cls.NAME: cls for cls in (SwAVSCACA, DeepClusterV2SCACA, DINOSCACA, BYOLSCACA, SimCLRSCACA)
}
# LEWEL (docs/method.md, "LEWEL (positive control)"): the host method is the name without "_lewel"
LEWEL_METHODS = {cls.NAME: cls for cls in (BYOLLEWEL, SwAVLEWEL)}
# CA terms that are not a host loss function called as is (the names under solo.losses)
SCACA_LOSSES = {"swav_scaca_loss_func": ca_loss_func, "simclr_scaca_loss_func": simclr_ca_loss_func}


def register() -> None:
    """Adds the ``*_scaca`` and ``*_lewel`` methods to ``solo.methods.METHODS`` and the CA
    losses to ``solo.losses``.

    Idempotent; an entry the host (or anybody else) already holds under these names is kept,
    with a warning, never replaced.
    """
    methods = {**SCACA_METHODS, **LEWEL_METHODS}
    entries = [(solo.methods.METHODS, name, cls) for name, cls in methods.items()]
    entries += [(vars(solo.losses), name, func) for name, func in SCACA_LOSSES.items()]
    for namespace, name, obj in entries:
        current = namespace.setdefault(name, obj)
        if current is not obj:
            warnings.warn(f"solo-scaca: '{name}' is already registered ({current!r}); kept it")
