"""solo-scaca: the spatial cross-attention add-on (SwAV's, and on other host methods) as a
solo-learn plugin.

Importing the package registers ``method=swav_scaca`` (and ``deepclusterv2_scaca``,
``dino_scaca``, ``byol_scaca``, ``simclr_scaca``, and the LEWEL positive controls
``byol_lewel``, ``swav_lewel``) in ``solo.methods.METHODS``: at once when solo-learn is already
imported, else as soon as it is (``solo_scaca.autoregister``). The package imports nothing of
the host itself; its names below are imported when first used.
"""

import importlib
from typing import Any, List

from solo_scaca.autoregister import register_with_host

# public name -> the module that defines it
_LAZY = {
    "METHOD_NAME": "solo_scaca.registration",
    "SCACA_METHODS": "solo_scaca.registration",
    "register": "solo_scaca.registration",
    "SwAVSCACA": "solo_scaca.methods.swav_scaca",
    "ca_loss_func": "solo_scaca.addon.losses",
}
__all__ = ["METHOD_NAME", "SCACA_METHODS", "SwAVSCACA", "register", "ca_loss_func"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'solo_scaca' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted({*globals(), *_LAZY})


register_with_host()
