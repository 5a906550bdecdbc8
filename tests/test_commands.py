"""The plugin's commands hide the host stack's known-harmless warnings; importing the package
does not touch a user's warning filters."""

import subprocess
import sys
import warnings

import pytest

import solo_scaca_commands

# the texts as the host stack prints them (lightning 2.1, timm 1.0, torch 2.x, solo-learn 1.0.6)
SAMPLES = [
    ("pkg_resources is deprecated as an API. See https://setuptools.pypa.io/en/latest/"
     "pkg_resources.html.", UserWarning),
    ("Importing from timm.models.helpers is deprecated, please import via timm.models",
     FutureWarning),
    ("Overwriting convnext_tiny in registry with solo.backbones.convnext.convnext.convnext_tiny. "
     "This is because the name being registered conflicts with an existing name.", UserWarning),
    ("`torch.cuda.amp.custom_fwd(args...)` is deprecated. Please use `torch.amp.custom_fwd("
     "args..., device_type='cuda')` instead.", FutureWarning),
    ("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec) and "
     "treespec.is_leaf()` instead.", FutureWarning),
    ("`torch.nn.utils.weight_norm` is deprecated in favor of "
     "`torch.nn.utils.parametrizations.weight_norm`.", FutureWarning),
    ("Starting from v1.9.0, `tensorboardX` has been removed as a dependency of the "
     "`lightning.pytorch` package, due to potential conflicts with other packages.", UserWarning),
    ("'pin_memory' argument is set as true but no accelerator is found, then device pinned "
     "memory won't be used.", UserWarning),
    ("You defined a `validation_step` but have no `val_dataloader`. Skipping val loop.",
     UserWarning),
    ("The number of training batches (5) is smaller than the logging interval "
     "Trainer(log_every_n_steps=50).", UserWarning),
]


@pytest.mark.parametrize("message, category", SAMPLES)
def test_quiet_hides_each_known_harmless_warning_and_nothing_else(message, category):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.warn(message, category)
        assert len(seen) == 1  # shown without the filters
        solo_scaca_commands.quiet()
        warnings.warn(message, category)
        warnings.warn("a warning the user should see", category)
    assert [str(w.message) for w in seen[1:]] == ["a warning the user should see"]


def test_importing_the_package_adds_no_warning_filter():
    code = ("import warnings, solo, solo.methods, lightning, timm; before = list(warnings.filters); "
            "import solo_scaca; print(warnings.filters == before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_user_warning_options_win(monkeypatch):
    monkeypatch.setattr(sys, "warnoptions", ["default"])
    with warnings.catch_warnings():
        before = list(warnings.filters)
        solo_scaca_commands.quiet()
        assert warnings.filters == before


def test_every_command_quiets_then_imports_its_module(monkeypatch):
    import configparser
    from pathlib import Path
    from types import SimpleNamespace

    calls = []
    monkeypatch.setattr(solo_scaca_commands, "quiet", lambda: calls.append("quiet"))
    monkeypatch.setattr(solo_scaca_commands.importlib, "import_module",
                        lambda name: calls.append(name) or SimpleNamespace(main=lambda: "ran"))
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).parent.parent / "setup.cfg")
    scripts = dict(line.replace(" ", "").split("=") for line in
                   cfg["options.entry_points"]["console_scripts"].strip().splitlines())
    modules = {"solo-scaca-toy-data": "solo_scaca.data.toy_shapes",
               "solo-scaca-clutter-data": "solo_scaca.data.clutter"}
    assert len(scripts) == 8
    for name, target in scripts.items():
        module, func = target.split(":")
        assert module == "solo_scaca_commands", name
        calls.clear()
        assert getattr(solo_scaca_commands, func)() == "ran"
        expected = modules.get(name, "solo_scaca.cli." + name.removeprefix("solo-scaca-"))
        assert calls == ["quiet", expected], name
