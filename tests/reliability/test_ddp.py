"""Lightning DDP with 2 CPU processes (gloo): local pairing by default, global with the option."""

import csv
import subprocess
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from solo_scaca import SwAVSCACA
from tests.conftest import ready_for_steps, tiny_batch


def _ddp_run(data: Path, out: Path, gather: bool) -> Path:
    cmd = [
        "solo-scaca-pretrain", "--config-name", "swav_scaca_toy",
        f"data.train_path={data / 'train'}", f"checkpoint.dir={out / 'models'}",
        "max_epochs=1", "optimizer.batch_size=8", "data.num_workers=0",
        "accelerator=cpu", "devices='2'", "strategy=ddp",
        "method_kwargs.ca_pairing=random", "method_kwargs.ca_warmup_epochs=0",
        f"method_kwargs.ca_gather_partners={gather}", "+log_every_n_steps=1",
    ]
    proc = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return out


def _remote_share(out: Path):
    metrics, = out.glob("lightning_logs/version_*/metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    return [float(r["train_ca_remote_partners"]) for r in rows if r.get("train_ca_remote_partners")]


@pytest.fixture(scope="module")
def ddp_data(tmp_path_factory) -> Path:
    from solo_scaca.data.toy_shapes import generate_toy_shapes

    return generate_toy_shapes(tmp_path_factory.mktemp("ddp") / "toy", train_per_class=4,
                               val_per_class=1, image_size=64)


def test_ddp_pairs_locally_by_default(ddp_data, tmp_path):
    shares = _remote_share(_ddp_run(ddp_data, tmp_path, gather=False))
    assert len(shares) == 2 and all(s == 0 for s in shares)  # 40 images / (2 x 8): 2 steps


def test_ddp_with_gather_pairs_across_processes_and_loads_in_one_process(ddp_data, tmp_path):
    out = _ddp_run(ddp_data, tmp_path, gather=True)
    shares = _remote_share(out)
    assert len(shares) == 2 and all(s > 0 for s in shares)

    ckpt, = (out / "models" / "swav_scaca").glob("*/*-ep=0.ckpt")
    cfg = OmegaConf.create((ckpt.parent / "args.json").read_text())
    model = SwAVSCACA(cfg)
    model.load_state_dict(torch.load(ckpt, map_location="cpu")["state_dict"], strict=True)
    loss = ready_for_steps(model).training_step(tiny_batch(size=64), 0)  # single process
    assert torch.isfinite(loss)
