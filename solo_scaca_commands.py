"""The plugin's console commands (``solo-scaca-*``).

Each hides the host stack's known-harmless warnings, by message, before importing it, then runs
its command. They live outside the ``solo_scaca`` package on purpose: importing the package must
leave a user's warning filters alone, and the host's own scripts are untouched.
"""

import importlib
import sys
import warnings
from typing import Any, Callable

# (message regex, category): warnings a user of these commands cannot act on
HARMLESS = (
    (r"pkg_resources is deprecated", UserWarning),  # lightning 2.1 imports it
    (r"Importing from timm\.", FutureWarning),  # the host's imports of timm's old paths
    (r"Overwriting \w+ in registry", UserWarning),  # the host's ConvNeXt/PoolFormer on timm's
    (r"`torch\.cuda\.amp\.custom_(fwd|bwd)\(args\.\.\.\)` is deprecated", FutureWarning),
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", Warning),  # lightning 2.1 on torch 2.x
    (r"`torch\.nn\.utils\.weight_norm` is deprecated", FutureWarning),  # the host's SwAV
    (r"Starting from v1\.9\.0, `tensorboardX` has been removed", UserWarning),
    (r"'pin_memory' argument is set as true but no accelerator is found", UserWarning),
    (r"You defined a `validation_step` but have no `val_dataloader`", UserWarning),
    (r"The number of training batches \(\d+\) is smaller than the logging interval", UserWarning),
)


def quiet() -> None:
    """Ignores the ``HARMLESS`` warnings in this process, unless the user set warning options
    (``-W``, ``PYTHONWARNINGS``): those win."""
    if sys.warnoptions:
        return
    for message, category in HARMLESS:
        warnings.filterwarnings("ignore", message=message, category=category)


def _command(module: str) -> Callable[[], Any]:
    """The console entry point that runs ``module.main()`` with the ``HARMLESS`` warnings
    hidden."""
    def run() -> Any:
        quiet()
        return importlib.import_module(module).main()

    return run


pretrain = _command("solo_scaca.cli.pretrain")
linear = _command("solo_scaca.cli.linear")
export = _command("solo_scaca.cli.export")
knn = _command("solo_scaca.cli.knn")
masks = _command("solo_scaca.cli.masks")
demo = _command("solo_scaca.cli.demo")
toy_data = _command("solo_scaca.data.toy_shapes")
clutter_data = _command("solo_scaca.data.clutter")
