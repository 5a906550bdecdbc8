"""Checkpoints load weights-only: a crafted checkpoint cannot run code through the plugin's
loaders, and the error names the global and the opt-in."""

import os
import re
from pathlib import Path

import pytest
import torch

from solo_scaca.host.checkpoints import UnsafeCheckpointError, load_checkpoint
from solo_scaca.cli.export import main as export_main
from solo_scaca.host.backbone_io import load_backbone

REPO = Path(__file__).resolve().parents[2]


class _CreatesAFile:
    """Unpickling this calls ``os.makedirs``: what a malicious checkpoint would do."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return os.makedirs, (str(self.target),)


@pytest.fixture
def crafted(tmp_path) -> tuple:
    target = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"backbone.w": torch.zeros(1)}, "cfg": {},
                "payload": _CreatesAFile(target)}, path)
    assert not target.exists()
    return path, target


def test_a_crafted_checkpoint_runs_nothing_and_the_error_names_the_global(crafted):
    path, target = crafted
    for load in (load_checkpoint, load_backbone,
                 lambda p: export_main([str(p), str(p.parent / "out.ckpt")])):
        with pytest.raises(UnsafeCheckpointError) as error:
            load(path)
        assert not target.exists()
        assert "os.makedirs" in str(error.value) and "--trust-checkpoint" in str(error.value)


def test_trust_is_an_explicit_opt_in(crafted):
    path, target = crafted
    assert "payload" in load_checkpoint(path, trust=True)
    assert target.exists()  # what weights-only loading prevented


def test_every_torch_load_of_the_plugin_and_benchmarks_is_the_safe_loader():
    calls = []
    for folder in ("solo_scaca", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if re.search(r"\btorch\.load\(", code) and "``" not in code:
                    calls.append(f"{path.relative_to(REPO)}:{number}")
    # the two calls of load_checkpoint (trusted, weights-only), nowhere else
    assert [c.rsplit(":", 1)[0] for c in calls] == ["solo_scaca/host/checkpoints.py"] * 2, calls


def test_linear_command_turns_the_flag_into_its_config_key(monkeypatch):
    from solo_scaca.cli import linear

    seen = []
    monkeypatch.setattr(linear, "_hydra_main", lambda: seen.append(list(linear.sys.argv)))
    monkeypatch.setattr(linear.sys, "argv", ["solo-scaca-linear", "--trust-checkpoint", "a=1"])
    linear.main()
    assert seen == [["solo-scaca-linear", "a=1", "++trust_checkpoint=True"]]
