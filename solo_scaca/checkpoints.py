"""Loading checkpoints safely: every loader of the plugin goes through ``load_checkpoint``.

``torch.load`` unpickles: with ``weights_only=False`` a crafted checkpoint runs code on the
user's machine. The plugin always asks for ``weights_only=True`` (the default only from torch
2.6 on), which loads tensors and plain containers; a solo-learn checkpoint (the host's
Checkpointer, Lightning's state, an exported backbone) needs nothing else but the few
``SAFE_GLOBALS``. Anything more fails with the global's name and the opt-in.
"""

import argparse
import pickle
import re
from pathlib import Path
from typing import Any, Dict, Union

import torch

# classes a solo-learn checkpoint may hold besides tensors and containers: the hyper-parameters
# of Lightning modules that saved an argparse namespace (older solo-learn)
SAFE_GLOBALS = (argparse.Namespace,)
TRUST_HINT = ("pass --trust-checkpoint to the plugin's commands (or trust=True) only for a "
              "checkpoint from a source you trust: it then unpickles anything, including code")


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint that needs more than tensors, containers and ``SAFE_GLOBALS`` to load."""


def load_checkpoint(path: Union[str, Path], trust: bool = False) -> Dict[str, Any]:
    """``torch.load`` on CPU with ``weights_only=True`` (``trust=True``: unrestricted)."""
    if trust:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        name = found.group(1) if found else "an object weights-only loading refuses"
        raise UnsafeCheckpointError(
            f"{path} needs {name} to load, which is not a tensor, a container or one of the "
            f"classes a solo-learn checkpoint needs; it was not loaded. {TRUST_HINT}"
        ) from error
