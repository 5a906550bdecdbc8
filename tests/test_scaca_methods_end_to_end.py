"""Every ``<method>_scaca`` end to end on the toy data: one epoch through the host's unmodified
main_pretrain.py from its shipped cifar config (the plugin's command runs each method in the
resume and DDP tests), and a resume that keeps the method's own state (DeepClusterV2's memory
bank, the momentum encoders) and the add-on's."""

import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import host_checkout, pretrain_command

CIFAR = Path(__file__).resolve().parents[1] / "scripts" / "pretrain" / "cifar"
CPU = ["accelerator=cpu", "devices='1'", "strategy=auto", "sync_batchnorm=False", "precision=32",
       "wandb.enabled=False", "++performance.disable_channel_last=True"]
HEADS = {
    "deepclusterv2": ["method_kwargs.num_prototypes=[10,10,10]"],
    "dino": ["method_kwargs.num_prototypes=10"],
    "byol": ["method_kwargs.pred_hidden_dim=32"],
    "simclr": [],
}


def _args(host: str, data: Path, out: Path, epochs: int, ddp: bool = False):
    cpu = [a for a in CPU if not a.startswith(("devices", "strategy"))] if ddp else CPU
    return [
        "--config-path", str(CIFAR), "--config-name", f"{host}_scaca.yaml",
        "data.dataset=custom", "++data.no_labels=False", f"data.train_path={data / 'train'}",
        "data.val_path=null", "data.format=image_folder", "data.num_workers=0",
        "augmentations.0.crop_size=32", *(["augmentations.1.crop_size=32"]
                                          if host in ("dino", "byol") else []),
        "optimizer.batch_size=16", f"max_epochs={epochs}", f"checkpoint.dir={out}",
        "method_kwargs.proj_hidden_dim=32", "method_kwargs.proj_output_dim=16",
        "method_kwargs.ca_dim=16", *HEADS[host], *cpu,
        *(["devices='2'", "strategy=ddp", "method_kwargs.ca_gather_partners=True",
           "+log_every_n_steps=1"] if ddp else []),
    ]


def _run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("host", sorted(HEADS))
def test_each_method_pretrains_through_the_host_main_pretrain_and_exports_its_backbone(
        host, toy_data, tmp_path):
    """The host's main_pretrain.py where a checkout exists, else the plugin's command (one
    pretraining either way: the checkpoint and its exported backbone are checked the same)."""
    host_entry = (host_checkout() / "main_pretrain.py").exists()
    cmd = pretrain_command("host" if host_entry else "plugin")
    # DeepClusterV2's CA term starts after its first k-means: two epochs
    epochs = 2 if host == "deepclusterv2" else 1
    log = _run([*cmd, *_args(host, toy_data, tmp_path / "m", epochs)], cwd=tmp_path)
    ckpts = list((tmp_path / "m" / f"{host}_scaca").glob(f"*/*-ep={epochs - 1}.ckpt"))
    assert len(ckpts) == 1, log[-3000:]
    state = torch.load(ckpts[0], map_location="cpu")["state_dict"]
    assert any(k.startswith("ca_head.") for k in state)
    csvs = list(tmp_path.rglob("metrics.csv"))
    assert csvs, log[-3000:]
    header = csvs[0].read_text().splitlines()[0]
    assert "train_ca_loss_epoch" in header and "train_ca_mask_entropy_epoch" in header
    # removal for inference: the backbone loads where the host's does
    from solo_scaca.host.backbone_io import build_backbone, export_backbone

    exported = torch.load(export_backbone(ckpts[0], tmp_path / "backbone.ckpt"),
                          map_location="cpu")["state_dict"]
    assert exported and all(k.startswith("backbone.") for k in exported)
    backbone = build_backbone("resnet18", "custom", host)
    backbone.load_state_dict({k[len("backbone."):]: v for k, v in exported.items()})
    for key, value in exported.items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize("host", ["deepclusterv2", "byol", "dino"])
def test_resume_keeps_the_method_s_state_and_the_add_on_s(host, toy_data, tmp_path):
    """Two epochs, then a third resumed from the second's checkpoint (the host's auto-resume
    only matches a run of the same max_epochs): the restored model
    (memory bank, prototypes, momentum encoders, DINO's centre, the add-on) is the saved one."""
    out = tmp_path / "m"
    _run(["solo-scaca-pretrain", *_args(host, toy_data, out, 2)], cwd=tmp_path)
    saved = list((out / f"{host}_scaca").glob("*/*-ep=1.ckpt"))
    assert len(saved) == 1
    state = torch.load(saved[0], map_location="cpu")["state_dict"]
    wanted = {"deepclusterv2": ("local_memory_index", "local_memory_embeddings", "prototypes."),
              "byol": ("momentum_backbone.", "momentum_projector."),
              "dino": ("momentum_backbone.", "momentum_head.", "dino_loss_func.center")}[host]
    for prefix in (*wanted, "ca_head."):
        assert any(k.startswith(prefix) for k in state), prefix

    from solo.methods import METHODS

    seen = {}

    class Probe(METHODS[f"{host}_scaca"]):
        def on_train_epoch_start(self):  # after Lightning restored the checkpoint and the
            # host's on_train_start ran; before this epoch changes anything
            seen.update({k: v.detach().cpu().clone() for k, v in self.state_dict().items()})
            super().on_train_epoch_start()

    from hydra import compose, initialize_config_dir

    from solo_scaca.cli.pretrain import pretrain

    with initialize_config_dir(str(CIFAR), version_base="1.2"):
        cfg = compose(f"{host}_scaca.yaml", overrides=[
            *_args(host, toy_data, out, 3)[4:], f"+resume_from_checkpoint='{saved[0]}'"])
    METHODS[f"{host}_scaca"], original = Probe, METHODS[f"{host}_scaca"]
    try:
        pretrain(cfg)
    finally:
        METHODS[f"{host}_scaca"] = original
    assert seen, "the resumed run did not start an epoch"
    for key, value in state.items():
        assert torch.equal(seen[key], value), key


@pytest.mark.parametrize("host", ["simclr", "dino", "deepclusterv2"])
def test_each_method_trains_under_ddp_with_partners_from_every_process(host, toy_data, tmp_path):
    """Two CPU processes (gloo): SimCLR's CA loss gathers its negatives, DINO's centre is
    all-reduced once more, DeepClusterV2's k-means runs distributed (epoch 1)."""
    import csv

    epochs = 2 if host == "deepclusterv2" else 1
    log = _run(["solo-scaca-pretrain", *_args(host, toy_data, tmp_path / "m", epochs, ddp=True)],
               cwd=tmp_path)
    assert list((tmp_path / "m" / f"{host}_scaca").glob(f"*/*-ep={epochs - 1}.ckpt")), log[-3000:]
    metrics, = tmp_path.glob("lightning_logs/version_*/metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    remote = [float(r["train_ca_remote_partners"]) for r in rows
              if r.get("train_ca_remote_partners")]
    assert remote and all(s > 0 for s in remote)
