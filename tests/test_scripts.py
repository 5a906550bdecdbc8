"""The drop-in scripts of ``scripts/``: every ``*_scaca*.yaml`` (found by glob, so a new one is
covered) composes, passes the host's parser and builds (pretraining: one training step; linear:
the host's LinearModel); every ``.sh`` is valid bash and runs its command on its own config; and
``solo-scaca-linear`` trains one epoch on a checkpoint and on its exported backbone."""

import json
import os
import subprocess
from pathlib import Path
from typing import List

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from solo.args.linear import parse_cfg as parse_linear_cfg
from solo.args.pretrain import parse_cfg as parse_pretrain_cfg
from solo.methods import METHODS
from solo.methods.linear import LinearModel

from solo_scaca import SwAVSCACA
from solo_scaca.cli.export import main as export_main
from solo_scaca.cli.knn import main as knn_main
from solo_scaca.host.cpu import apply_cpu_overrides
from solo_scaca.host.backbone_io import build_backbone
from tests.conftest import host_checkout, make_cfg, ready_for_steps

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
PRETRAIN_YAMLS = sorted(SCRIPTS.glob("pretrain/**/*_scaca*.yaml"))
LINEAR_YAMLS = sorted(SCRIPTS.glob("linear/**/*_scaca*.yaml"))
# per host method: its heads made tiny for one step
TINY_HEADS = {
    "swav": ["method_kwargs.num_prototypes=10", "method_kwargs.queue_size=8"],
    "deepclusterv2": ["method_kwargs.num_prototypes=[10,10]"],
    "dino": ["method_kwargs.num_prototypes=10"],
    "byol": ["method_kwargs.pred_hidden_dim=32"],
    "simclr": [],
}


def _host_name(yaml: Path) -> str:
    """The host's file of one of ours: ``dino_scaca_vit.yaml`` -> ``dino_vit.yaml``."""
    return yaml.name.replace("_scaca", "")
SHELL_SCRIPTS = sorted(SCRIPTS.rglob("*.sh"))
COMMANDS = ("solo-scaca-pretrain", "solo-scaca-linear", "solo-scaca-knn")
CPU_NOTICE = "no CUDA device found, using the host's CPU settings"


def _id(path: Path) -> str:
    return str(path.relative_to(SCRIPTS))


def _compose(yaml: Path, overrides: List[str]) -> DictConfig:
    """A yaml of scripts/ composed by hydra as the commands do, with the CPU settings applied."""
    with initialize_config_dir(str(yaml.parent), version_base="1.2"):
        cfg = compose(yaml.name, overrides=overrides)
    OmegaConf.set_struct(cfg, False)
    apply_cpu_overrides(cfg)
    return cfg


def _data_paths(cfg_yaml: Path, data: Path) -> List[str]:
    """The tiny ImageFolder as data paths, except for CIFAR (torchvision's own download root)."""
    dataset = OmegaConf.load(cfg_yaml).data.dataset
    if dataset.startswith("cifar"):
        return []
    return [f"data.train_path={data / 'train'}", f"data.val_path={data / 'val'}"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """10 classes, 2 train and 1 val images each, 32 px (an ImageFolder)."""
    from solo_scaca.data.toy_shapes import generate_toy_shapes

    return generate_toy_shapes(tmp_path_factory.mktemp("scripts") / "toy",
                               train_per_class=2, val_per_class=1, image_size=32)


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_data, tmp_path_factory) -> Path:
    """An untrained swav_scaca model saved as the host's Checkpointer does (state dict and
    args.json beside it)."""
    cfg = make_cfg(["data.dataset=custom", f"data.train_path={tiny_data / 'train'}"])
    out = tmp_path_factory.mktemp("pretrained") / "swav_scaca-tiny-ep=0.ckpt"
    torch.save({"state_dict": SwAVSCACA(cfg).state_dict()}, out)
    (out.parent / "args.json").write_text(json.dumps(OmegaConf.to_container(cfg)))
    return out


# ------------------------------------------------------------------ pretraining configs


def test_every_dataset_folder_has_its_configs():
    folders = {p.parent.name for p in PRETRAIN_YAMLS if p.name == "swav_scaca.yaml"}
    assert {"cifar", "cifar-multicrop", "imagenet-100", "imagenet-100-multicrop", "imagenet",
            "custom"} <= folders
    linear = {p.parent.name for p in LINEAR_YAMLS if p.name == "swav_scaca.yaml"}
    assert {"cifar", "imagenet-100", "imagenet", "custom"} <= linear
    # every other method: cifar and imagenet-100, pretraining and linear
    for method in ("deepclusterv2", "dino", "byol", "simclr"):
        for folder in ("cifar", "imagenet-100"):
            for stage in ("pretrain", "linear"):
                assert (SCRIPTS / stage / folder / f"{method}_scaca.yaml").is_file()
                assert (SCRIPTS / stage / folder / f"{method}_scaca.sh").is_file()
    assert (SCRIPTS / "pretrain" / "imagenet-100" / "dino_scaca_vit.yaml").is_file()


@pytest.mark.parametrize("yaml", PRETRAIN_YAMLS, ids=_id)
def test_pretrain_config_writes_every_ca_key_at_its_default(yaml):
    raw = OmegaConf.load(yaml)
    assert raw.method == yaml.stem.replace("_vit", "")
    ca_keys = METHODS[raw.method].CA_KEYS
    assert set(ca_keys) <= set(raw.method_kwargs)
    stripped = OmegaConf.create(OmegaConf.to_container(raw))
    for key in ca_keys:
        del stripped.method_kwargs[key]
    defaults = METHODS[raw.method].add_and_assert_specific_cfg(stripped).method_kwargs
    assert {k: raw.method_kwargs[k] for k in ca_keys} == {k: defaults[k] for k in ca_keys}


@pytest.mark.parametrize("yaml", PRETRAIN_YAMLS + LINEAR_YAMLS, ids=_id)
def test_config_mirrors_the_host_files(yaml):
    """Sub-configs are the host's files; where the host has the method's file (``swav.yaml`` for
    ``swav_scaca.yaml``), its settings are ours except the name, the method and the CA keys."""
    host_dir = host_checkout() / "scripts" / yaml.relative_to(SCRIPTS).parent
    if not host_dir.parent.exists():
        pytest.skip(f"no solo-learn checkout at {host_checkout()} (set SOLO_LEARN_ROOT)")
    for sub in yaml.parent.glob("*/*.yaml"):
        host_sub = host_dir / sub.relative_to(yaml.parent)
        if not host_sub.exists():  # a folder the host lacks: the same file of another folder
            host_sub = next(host_dir.parent.glob(f"*/{sub.parent.name}/{sub.name}"))
        assert sub.read_bytes() == host_sub.read_bytes(), sub
    host_file = host_dir / _host_name(yaml)
    if host_file.exists():
        ours, host = OmegaConf.load(yaml), OmegaConf.load(host_file)
        method = ours.get("method", ours.get("pretrain_method"))
        assert method == host.get("method", host.get("pretrain_method")) + "_scaca"
        for cfg in (ours, host):
            cfg.pop("name")
            cfg.pop("method", None)
            cfg.pop("pretrain_method", None)
            for key in METHODS[method].CA_KEYS if "method_kwargs" in cfg else ():
                cfg.method_kwargs.pop(key, None)
        assert ours == host


@pytest.mark.parametrize("yaml", PRETRAIN_YAMLS, ids=_id)
def test_pretrain_config_trains_one_step(yaml, tiny_data):
    host_method = OmegaConf.load(yaml).method[: -len("_scaca")]
    cfg = _compose(yaml, [
        "method_kwargs.proj_hidden_dim=32",
        "method_kwargs.proj_output_dim=16",
        *TINY_HEADS[host_method],
        "method_kwargs.ca_dim=16",
        "method_kwargs.ca_warmup_epochs=0",
        "optimizer.batch_size=4",
        "data.num_workers=0",
        *_data_paths(yaml, tiny_data),
    ])
    cfg = parse_pretrain_cfg(cfg)
    assert cfg.method == f"{host_method}_scaca"
    model = ready_for_steps(METHODS[cfg.method](cfg))
    assert model.ca_head is not None
    # what the methods' on_train_start / on_train_epoch_start set up (single process)
    if host_method == "swav":
        model.register_buffer("queue", torch.zeros(2, model.queue_size, model.proj_output_dim))
    if host_method == "deepclusterv2":
        model.assignments = torch.zeros(len(model.num_prototypes), 4, dtype=torch.long)
        model.local_memory_index = torch.zeros(4, dtype=torch.long)
        model.local_memory_embeddings = torch.zeros(2, 4, model.proj_output_dim)

    large = 32 if cfg.data.dataset.startswith("cifar") else 64
    if cfg.backbone.name.startswith("vit"):
        large = cfg.augmentations[0].crop_size  # timm's ViT takes its own image size only
    g = torch.Generator().manual_seed(0)
    crops = [torch.randn(4, 3, large, large, generator=g) for _ in range(cfg.data.num_large_crops)]
    crops += [torch.randn(4, 3, large // 2, large // 2, generator=g)
              for _ in range(cfg.data.num_small_crops)]
    targets = torch.randint(0, cfg.data.num_classes, (4,), generator=g)
    loss = model.training_step([torch.arange(4), crops, targets], 0)
    assert torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None for p in model.ca_head.parameters())


# ------------------------------------------------------------------ linear configs


@pytest.mark.parametrize("yaml", LINEAR_YAMLS, ids=_id)
def test_linear_config_builds_the_host_linear_model(yaml, tiny_data):
    cfg = _compose(yaml, ["pretrained_feature_extractor=model.ckpt", "data.num_workers=0",
                          *_data_paths(yaml, tiny_data)])
    cfg = parse_linear_cfg(cfg)
    assert cfg.pretrain_method == yaml.stem
    backbone = build_backbone(cfg.backbone.name, cfg.data.dataset, cfg.pretrain_method,
                              cfg.backbone.kwargs)
    model = LinearModel(backbone, loss_func=torch.nn.CrossEntropyLoss(), mixup_func=None, cfg=cfg)
    with torch.no_grad():
        logits = model.eval()(torch.randn(2, 3, 32, 32))["logits"]
    assert logits.shape == (2, cfg.data.num_classes)


# ------------------------------------------------------------------ shell scripts


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=_id)
def test_script_is_valid_bash_and_runs_its_command_on_its_config(
    script, tmp_path, tiny_data, tiny_checkpoint, capsys
):
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    # stand-ins for the commands that print what they were given
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for command in COMMANDS:
        (stubs / command).write_text('#!/bin/sh\nbasename "$0"\nprintf "%s\\n" "$@"\n')
        (stubs / command).chmod(0o755)
    knn = script.parent.name == "knn"
    args = [str(tiny_checkpoint), "--k", "5", "--num-workers", "0"] if knn else ["a.b=1"]
    passed_on = args[1:] if knn else args  # the knn script takes the checkpoint first
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}",
           "TRAIN_PATH": str(tiny_data / "train"), "VAL_PATH": str(tiny_data / "val"),
           "IMAGE_SIZE": "32"}
    run = subprocess.run(["bash", str(script), *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    command, *given = run.stdout.splitlines()
    assert given[-len(passed_on):] == passed_on  # the user's options come last: they win

    if knn:
        assert command == "solo-scaca-knn"
        assert given[given.index("--ckpt") + 1] == str(tiny_checkpoint)
        knn_main(given)  # the real command, in process, on the script's arguments
        assert "kNN k=5 (cosine): top-1" in capsys.readouterr().out
        return
    stage = script.relative_to(SCRIPTS).parts[0]
    assert command == {"pretrain": "solo-scaca-pretrain", "linear": "solo-scaca-linear"}[stage]
    config_dir = Path(given[given.index("--config-path") + 1])
    config = config_dir / given[given.index("--config-name") + 1]
    assert config_dir == script.parent  # resolved from the script's location, not the cwd
    assert config.is_file()
    for documented in ("without CUDA", "data.train_path=", "data.val_path=", f"main_{stage}.py"):
        assert documented in text, documented


# ------------------------------------------------------------------ solo-scaca-linear


def test_linear_command_trains_one_epoch_on_a_checkpoint_and_its_export(
    tiny_checkpoint, tiny_data, tmp_path
):
    exported = tmp_path / "backbone.ckpt"
    export_main([str(tiny_checkpoint), str(exported)])  # the solo-scaca-export command
    runs = {}
    for name, ckpt in (("full", tiny_checkpoint), ("exported", exported)):
        (tmp_path / name).mkdir()
        cmd = ["solo-scaca-linear", "--config-path", str(SCRIPTS / "linear" / "custom"),
               "--config-name", "swav_scaca.yaml",
               f"pretrained_feature_extractor='{ckpt}'",  # quoted: '=' in the file name
               f"data.train_path={tiny_data / 'train'}", f"data.val_path={tiny_data / 'val'}",
               "data.format=image_folder", "data.num_workers=0", "optimizer.batch_size=10",
               "max_epochs=1", f"checkpoint.dir={tmp_path / name / 'models'}",
               "auto_resume.enabled=False"]
        runs[name] = subprocess.Popen(cmd, cwd=tmp_path / name, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)

    pretrained = torch.load(tiny_checkpoint, map_location="cpu")["state_dict"]
    for name, proc in runs.items():
        log, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{name}:\n{log[-5000:]}"
        assert log.count(CPU_NOTICE) == (0 if torch.cuda.is_available() else 1)
        ckpts = list((tmp_path / name / "models" / "linear").glob("*/*-ep=0.ckpt"))
        assert len(ckpts) == 1, log[-3000:]
        ckpt = torch.load(ckpts[0], map_location="cpu")
        assert ckpt["epoch"] == 0
        state = ckpt["state_dict"]
        assert state["classifier.weight"].shape == (10, 512)
        # the checkpoint's backbone was loaded, and the host kept it frozen
        for key, value in pretrained.items():
            if key.startswith("backbone."):
                assert torch.equal(state[key], value), (name, key)
