"""solo-scaca: the spatial cross-attention add-on for SwAV as a solo-learn plugin.

Importing the package registers ``method=swav_scaca`` in ``solo.methods.METHODS``.
"""

from solo_scaca.addon.losses import ca_loss_func
from solo_scaca.registration import METHOD_NAME, register
from solo_scaca.methods.swav_scaca import SwAVSCACA

register()

__all__ = ["METHOD_NAME", "SwAVSCACA", "register", "ca_loss_func"]
