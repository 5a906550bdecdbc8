"""Checkpoints, read and written safely.

Writing: ``AtomicCheckpointIO`` makes every checkpoint the plugin's commands save appear whole or
not at all (a temp file, then a rename), so a run killed at any moment (SIGKILL, the OOM killer)
leaves no truncated checkpoint for the auto-resume to pick; ``readable_checkpoint`` tells a
truncated one (written by another program) from a whole one.

Loading: every loader of the plugin goes through ``load_checkpoint``.

``torch.load`` unpickles: with ``weights_only=False`` a crafted checkpoint runs code on the
user's machine. The plugin always asks for ``weights_only=True`` (the default only from torch
2.6 on), which loads tensors and plain containers; a solo-learn checkpoint (the host's
Checkpointer, Lightning's state, an exported backbone) needs nothing else but the few
``SAFE_GLOBALS``. Anything more fails with the global's name and the opt-in.
"""

import argparse
import os
import pickle
import re
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

# classes a solo-learn checkpoint may hold besides tensors and containers: the hyper-parameters
# of Lightning modules that saved an argparse namespace (older solo-learn)
SAFE_GLOBALS = (argparse.Namespace,)
TRUST_FLAG = "--trust-checkpoint"  # the commands' opt-in (``add_trust_option``)
TRUST_HINT = (f"pass {TRUST_FLAG} to the plugin's commands (or trust=True) only for a "
              "checkpoint from a source you trust: it then unpickles anything, including code")


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint that needs more than tensors, containers and ``SAFE_GLOBALS`` to load."""


def add_trust_option(parser: argparse.ArgumentParser) -> None:
    """A command's ``--trust-checkpoint`` (``args.trust_checkpoint``): ``load_checkpoint``'s
    ``trust``."""
    parser.add_argument(TRUST_FLAG, action="store_true",
                        help="load a checkpoint that needs more than tensors (unpickles "
                             "anything: only for a checkpoint from a source you trust)")


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


PARTIAL_SUFFIX = ".partial"
# tests only: "SECONDS[:NAME_END]", seconds to wait between writing a checkpoint's temp file and
# renaming it (only for file names ending with NAME_END, if given), so that a kill can land
# inside a checkpoint write deterministically
WRITE_PAUSE_ENV = "SOLO_SCACA_TEST_CHECKPOINT_WRITE_PAUSE"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, whole or nothing: it writes ``<path>.partial`` and renames
    it to ``<path>`` (Lightning writes the final path directly, so a kill during the write
    leaves a truncated file)."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path: Union[str, Path],
                        storage_options: Optional[Any] = None) -> None:
        path = Path(path)
        partial = path.with_name(path.name + PARTIAL_SUFFIX)
        super().save_checkpoint(checkpoint, partial, storage_options)
        seconds, _, name_end = os.environ.get(WRITE_PAUSE_ENV, "").partition(":")
        if seconds and float(seconds) > 0 and path.name.endswith(name_end):
            time.sleep(float(seconds))
        os.replace(partial, path)


def readable_checkpoint(path: Union[str, Path]) -> bool:
    """Whether ``path`` is a whole checkpoint file (torch's zip format, its directory at the end:
    a truncated file has none)."""
    return Path(path).is_file() and zipfile.is_zipfile(path)
