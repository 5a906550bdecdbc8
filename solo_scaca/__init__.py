"""solo-scaca: the spatial cross-attention add-on (SwAV's, and on other host methods) as a
solo-learn plugin.

Importing the package registers ``method=swav_scaca`` (and ``deepclusterv2_scaca``,
``dino_scaca``, ``byol_scaca``, ``simclr_scaca``, and the LEWEL positive controls
``byol_lewel``, ``swav_lewel``) in ``solo.methods.METHODS``.
"""

from solo_scaca.addon.losses import ca_loss_func
from solo_scaca.registration import METHOD_NAME, SCACA_METHODS, register
from solo_scaca.methods.swav_scaca import SwAVSCACA

register()

__all__ = ["METHOD_NAME", "SCACA_METHODS", "SwAVSCACA", "register", "ca_loss_func"]
