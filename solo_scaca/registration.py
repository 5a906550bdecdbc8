"""Registration of ``swav_scaca`` in the host's method registry (``solo.methods.METHODS``)."""

import warnings

import solo.losses
import solo.methods

from solo_scaca.addon.losses import ca_loss_func
from solo_scaca.methods.swav_scaca import SwAVSCACA

METHOD_NAME = "swav_scaca"
LOSS_NAME = "swav_scaca_loss_func"  # the name under solo.losses (the CA term of swav_scaca)


def register() -> None:
    """Adds ``swav_scaca`` to ``solo.methods.METHODS`` and its loss to ``solo.losses``.

    Idempotent; an entry the host (or anybody else) already holds under these names is kept,
    with a warning, never replaced.
    """
    for namespace, name, obj in (
        (solo.methods.METHODS, METHOD_NAME, SwAVSCACA),
        (vars(solo.losses), LOSS_NAME, ca_loss_func),
    ):
        current = namespace.setdefault(name, obj)
        if current is not obj:
            warnings.warn(f"solo-scaca: '{name}' is already registered ({current!r}); kept it")
