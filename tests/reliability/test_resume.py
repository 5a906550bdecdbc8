"""An interrupted swav_scaca run resumed from its checkpoint continues as if never stopped."""

import csv
from pathlib import Path
from typing import List

import pytest
import torch
from hydra import compose, initialize_config_module

from solo_scaca import SwAVSCACA
from solo_scaca.cli.pretrain import pretrain

# one batch per epoch (the whole toy set) and deterministic crops: an uninterrupted and a resumed
# run then see the same data, so their losses must agree up to float noise
DETERMINISTIC = [
    "optimizer.batch_size=40",
    "augmentations.0.rrc.enabled=False",
    "augmentations.0.color_jitter.prob=0",
    "augmentations.0.grayscale.prob=0",
    "augmentations.0.horizontal_flip.prob=0",
    "data.num_workers=0",
    "method_kwargs.queue_size=80",
    "method_kwargs.epoch_queue_starts=1",
    "method_kwargs.ca_warmup_epochs=2",
    "+log_every_n_steps=1",
    "max_epochs=3",
]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    from solo_scaca.data.toy_shapes import generate_toy_shapes

    return generate_toy_shapes(tmp_path_factory.mktemp("resume") / "toy", train_per_class=4,
                               val_per_class=1, image_size=64)


def _run(root: Path, data: Path, extra: List[str] = ()) -> List[dict]:
    """Pretrains in ``root``; returns the per-step rows of the CSV log."""
    with initialize_config_module("solo_scaca.configs", version_base="1.2"):
        cfg = compose("swav_scaca_toy", overrides=[
            *DETERMINISTIC, f"data.train_path={data / 'train'}",
            f"checkpoint.dir={root / 'models'}", *extra])
    pretrain(cfg)
    logs = sorted(Path("lightning_logs").glob("version_*/metrics.csv"))
    rows = list(csv.DictReader(logs[-1].open()))
    return [r for r in rows if r.get("train_swav_loss_step")]


def _losses(rows, epoch):
    return [float(r[key]) for r in rows if int(r["epoch"]) == epoch
            for key in ("train_swav_loss_step", "train_ca_loss_step", "train_ca_weight")]


@pytest.mark.parametrize("how", ["auto_resume", "resume_from_checkpoint"])
def test_resumed_run_matches_the_uninterrupted_one(small_data, tmp_path, monkeypatch, how):
    monkeypatch.chdir(tmp_path)
    full = _run(tmp_path / "full", small_data)

    class Preempted(Exception):
        pass

    def preempt(self):  # runs after the host's Checkpointer has saved epoch 0
        raise Preempted()

    monkeypatch.setattr(SwAVSCACA, "on_train_epoch_end", preempt, raising=False)
    with pytest.raises(Preempted):
        _run(tmp_path / "cut", small_data)
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    ckpts = list((tmp_path / "cut" / "models" / "swav_scaca").glob("*/*-ep=0.ckpt"))
    assert len(ckpts) == 1
    state = torch.load(ckpts[0], map_location="cpu")
    assert state["epoch"] == 0 and "queue" in state["state_dict"]
    assert any(k.startswith("ca_head.") for k in state["state_dict"])

    extra = (["auto_resume.enabled=True"] if how == "auto_resume"
             else [f"+resume_from_checkpoint='{ckpts[0]}'"])
    resumed = _run(tmp_path / "cut", small_data, extra)
    assert {int(r["epoch"]) for r in resumed} == {1, 2}  # continued, not restarted
    for epoch in (1, 2):
        got, want = _losses(resumed, epoch), _losses(full, epoch)
        assert len(got) == len(want) == 3  # the CA warm-up weight continues too
        assert got == pytest.approx(want, rel=1e-4, abs=1e-4), f"epoch {epoch}"


def test_an_interrupted_run_raises_instead_of_returning_a_checkpoint(small_data, tmp_path,
                                                                       monkeypatch):
    """Lightning turns Ctrl-C into a quiet return; the pretraining command must not, or a
    benchmark would evaluate an unfinished run as if it were done."""
    monkeypatch.chdir(tmp_path)

    def interrupt(self):  # after the host's Checkpointer has saved epoch 0
        raise KeyboardInterrupt()

    monkeypatch.setattr(SwAVSCACA, "on_train_epoch_end", interrupt, raising=False)
    with pytest.raises(KeyboardInterrupt, match="auto_resume"):
        _run(tmp_path / "cut", small_data)
    assert list((tmp_path / "cut" / "models" / "swav_scaca").glob("*/*-ep=0.ckpt"))
