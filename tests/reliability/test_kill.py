"""A run killed with SIGKILL at any moment, even inside a checkpoint write, resumes with the
host's auto-resume and ends as an uninterrupted run does; no checkpoint on disk is ever
truncated (the plugin's commands write checkpoints whole or not at all)."""

import csv
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from omegaconf import OmegaConf

from solo_scaca import SwAVSCACA
from solo_scaca.host.checkpoints import PARTIAL_SUFFIX, WRITE_PAUSE_ENV, readable_checkpoint
from tests.reliability.test_resume import DETERMINISTIC

EPOCHS = 4


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    from solo_scaca.data.toy_shapes import generate_toy_shapes

    return generate_toy_shapes(tmp_path_factory.mktemp("kill") / "toy", train_per_class=4,
                               val_per_class=1, image_size=64)


def _cmd(data: Path) -> List[str]:
    overrides = [o for o in DETERMINISTIC if not o.startswith("max_epochs")]
    return ["solo-scaca-pretrain", "--config-name", "swav_scaca_toy", *overrides,
            f"max_epochs={EPOCHS}", f"data.train_path={data / 'train'}",
            "checkpoint.dir=models", "checkpoint.frequency=1", "auto_resume.enabled=True",
            "++enable_progress_bar=False"]


def _start(data: Path, root: Path, pause: str = "") -> subprocess.Popen:
    env = {**os.environ, WRITE_PAUSE_ENV: pause}
    log = (root / f"log-{time.monotonic_ns()}.txt").open("w")
    return subprocess.Popen(_cmd(data), cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for(pattern: str, root: Path, proc: subprocess.Popen, timeout: float = 300) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = sorted(root.rglob(pattern))
        if found:
            return found[0]
        assert proc.poll() is None, "the run ended before the awaited moment"
        time.sleep(0.02)
    raise TimeoutError(pattern)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def _checkpoints_are_whole(root: Path) -> List[Path]:
    ckpts = sorted(root.rglob("*.ckpt"))
    for ckpt in ckpts:
        assert readable_checkpoint(ckpt), f"{ckpt} is truncated"
        torch.load(ckpt, map_location="cpu", weights_only=True)  # and it loads
    return ckpts


def _losses(root: Path) -> Dict[int, List[float]]:
    """Per epoch, the losses of the last process that logged that epoch."""
    per_epoch: Dict[int, List[float]] = {}
    logs = sorted(root.glob("lightning_logs/version_*/metrics.csv"),
                  key=lambda p: int(p.parent.name.split("_")[1]))
    for log in logs:
        rows = [r for r in csv.DictReader(log.open()) if r.get("train_swav_loss_step")]
        for epoch in {int(r["epoch"]) for r in rows}:
            per_epoch[epoch] = [float(r[k]) for r in rows if int(r["epoch"]) == epoch
                                for k in ("train_swav_loss_step", "train_ca_loss_step")]
    return per_epoch


def _finish(proc: subprocess.Popen, root: Path) -> None:
    assert proc.wait(timeout=600) == 0, sorted(root.glob("log-*.txt"))[-1].read_text()[-3000:]


def test_hard_kills_anywhere_then_auto_resume_end_like_an_uninterrupted_run(small_data,
                                                                             tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    _finish(_start(small_data, full), full)

    cut = tmp_path / "cut"
    cut.mkdir()
    # 1. inside a checkpoint write: the temp file of epoch 1 is written, not yet renamed
    proc = _start(small_data, cut, pause="600:-ep=1.ckpt")
    partial = _wait_for(f"*-ep=1.ckpt{PARTIAL_SUFFIX}", cut, proc)
    _kill(proc)
    assert partial.exists() and not partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)]).exists()
    assert [p.name.split("-ep=")[1] for p in _checkpoints_are_whole(cut)] == ["0.ckpt"]

    # 2. at seeded moments after start (before, during or between epochs)
    rng = random.Random(0)
    for delay in (rng.uniform(2, 12) for _ in range(2)):
        proc = _start(small_data, cut)
        time.sleep(delay)
        if proc.poll() is None:
            _kill(proc)
        _checkpoints_are_whole(cut)

    _finish(_start(small_data, cut), cut)  # resumes and completes
    final = [p for p in _checkpoints_are_whole(cut) if p.name.endswith(f"-ep={EPOCHS - 1}.ckpt")]
    assert len(final) == 1
    args = OmegaConf.create(json.loads((final[0].parent / "args.json").read_text()))
    state = torch.load(final[0], map_location="cpu", weights_only=True)["state_dict"]
    model = SwAVSCACA(args)
    model.on_load_checkpoint({"state_dict": state})  # room for the saved queue
    model.load_state_dict(state, strict=True)

    got, want = _losses(cut), _losses(full)
    assert sorted(want) == list(range(EPOCHS)) and sorted(got) == sorted(want)
    for epoch in want:
        assert got[epoch] == pytest.approx(want[epoch], rel=1e-4, abs=1e-4), f"epoch {epoch}"
