"""What importing the package costs and does: the plain-data commands start without the host
stack; importing it, in any order with solo-learn, registers every method and CA loss; the Hydra
plugin does the same for the host's own scripts."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

PLUGIN_METHODS = ["byol_lewel", "byol_scaca", "deepclusterv2_scaca", "dino_scaca",
                  "simclr_scaca", "swav_lewel", "swav_scaca"]
HOST_STACK = ("solo", "torch", "lightning", "timm")
# prints the plugin's entries of the host's registries
SHOW = ("import solo.losses, solo.methods; "
        "print(sorted(k for k in solo.methods.METHODS if 'scaca' in k or 'lewel' in k)); "
        "print(sorted(k for k in vars(solo.losses) if 'scaca' in k))")


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, **env})


def _imported(stderr: str) -> list:
    """The modules ``-X importtime`` (PYTHONPROFILEIMPORTTIME) says were imported."""
    return [line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines()
            if line.startswith("import time:")]


def _command(name: str, *argv: str) -> str:
    """Runs the console entry point ``solo_scaca_commands.<name>`` with ``argv``."""
    return f"import sys, solo_scaca_commands as c; sys.argv = ['x', *{list(argv)!r}]; c.{name}()"


def test_the_data_commands_start_without_the_host_stack(tmp_path):
    for split in ("train", "test"):  # a CIFAR-like source: 2 classes, 1 image each
        for name in ("a", "b"):
            (tmp_path / "cifar" / split / name).mkdir(parents=True)
            Image.fromarray(np.full((32, 32, 3), 99, np.uint8)).save(
                tmp_path / "cifar" / split / name / "0.png")
    runs = {
        "toy_data": ("--out", str(tmp_path / "toy"), "--train-per-class", "1",
                     "--val-per-class", "1"),
        "clutter_data": ("--cifar", str(tmp_path / "cifar"), "--out", str(tmp_path / "clutter"),
                         "--train-per-class", "1", "--test-per-class", "1"),
    }
    for name, argv in runs.items():
        out = _python(_command(name, *argv), PYTHONPROFILEIMPORTTIME="1")
        imported = _imported(out.stderr)
        assert "solo_scaca.data.layout" in imported, name  # the measure works
        heavy = [m for m in imported if m.split(".")[0] in HOST_STACK]
        assert not heavy, f"{name} imported {heavy[:5]}"
    assert (tmp_path / "toy" / "DONE").exists() and (tmp_path / "clutter" / "DONE").exists()


@pytest.mark.parametrize("first", [
    "import solo.methods, solo_scaca",  # the host first
    "import solo_scaca; import solo.methods",  # the package first: registered when it comes
    "import solo_scaca.methods.swav_scaca",  # the host first imported by a module of the plugin
    "from solo_scaca.evaluation.mask_view import load_method",
    "import solo_scaca.data.toy_shapes; import solo.utils.misc",
])
def test_every_import_order_registers_every_method_and_loss(first):
    lines = _python(f"{first}; {SHOW}").stdout.splitlines()
    assert lines == [str(PLUGIN_METHODS), str(["simclr_scaca_loss_func", "swav_scaca_loss_func"])]


def test_the_package_names_load_when_used():
    out = _python("import sys, solo_scaca; print('solo' in sys.modules); "
                  "print(solo_scaca.SwAVSCACA.NAME, solo_scaca.METHOD_NAME, "
                  "sorted(solo_scaca.SCACA_METHODS)); print('solo' in sys.modules)")
    assert out.stdout.split("\n")[0] == "False"
    assert out.stdout.split("\n")[1].startswith("swav_scaca swav_scaca ['byol_scaca'")
    assert out.stdout.split("\n")[2] == "True"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import solo_scaca

        solo_scaca.nope  # noqa: B018


@pytest.mark.parametrize("order", ["solo_first", "plugin_first"])
def test_the_hydra_plugin_registers_for_the_host_scripts(order):
    plugin = "import hydra_plugins.solo_scaca_plugin.solo_scaca_plugin"
    first = f"import solo.methods; {plugin}" if order == "solo_first" else plugin
    lines = _python(f"{first}; {SHOW}").stdout.splitlines()
    assert lines[0] == str(PLUGIN_METHODS)
