"""LEWEL as a positive control (``byol_lewel``, ``swav_lewel``; docs/method.md, "LEWEL (positive
control)"): registration, ``lewel_weight=0`` is exactly the host method, the aligned term
trains the neck and the backbone, the maps are bounded distributions, config errors name the
key, the backbone exports alone, the drop-in configs, the masks command, and the host's
unmodified main_pretrain.py end to end (with a resume)."""

import json
import math
from pathlib import Path
from typing import List

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from solo.args.pretrain import parse_cfg
from solo.methods import METHODS
from solo.methods.byol import BYOL
from solo.methods.swav import SwAV

import solo_scaca
from solo_scaca.addon.lewel import LEWEL_KEYS, lewel_maps
from solo_scaca.host.cpu import apply_cpu_overrides
from solo_scaca.registration import LEWEL_METHODS
from tests.conftest import (
    assert_same_step,
    host_checkout,
    pretrain_command,
    ready_for_steps,
    tiny_batch,
)
from tests.test_scaca_methods_end_to_end import CPU, _run

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts" / "pretrain"
CIFAR = SCRIPTS / "cifar"
NAMES = ["byol_lewel", "swav_lewel"]
HOSTS = {"byol_lewel": BYOL, "swav_lewel": SwAV}
TINY_HEADS = {  # per host method: its heads made tiny
    "byol": ["method_kwargs.pred_hidden_dim=32"],
    "swav": ["method_kwargs.num_prototypes=10", "method_kwargs.queue_size=0"],
}
YAMLS = sorted(SCRIPTS.glob("*/*_lewel.yaml"))


def _host(name: str) -> str:
    return name.removesuffix("_lewel")


def _compose(yaml: Path, overrides: List[str] = (), crop_size: int = 0) -> DictConfig:
    """A drop-in yaml composed by hydra, every pipeline at ``crop_size`` px (0: as is), with
    the CPU settings, through the host's ``parse_cfg``."""
    with initialize_config_dir(str(yaml.parent), version_base="1.2"):
        cfg = compose(yaml.name, overrides=list(overrides))
    OmegaConf.set_struct(cfg, False)
    for pipeline in cfg.augmentations if crop_size else ():
        pipeline.crop_size = crop_size
    apply_cpu_overrides(cfg)
    return parse_cfg(cfg)


def tiny_cfg(name: str, overrides: List[str] = (), crop_size: int = 16) -> DictConfig:
    """The shipped cifar config of ``name`` made tiny (16 px: a 3 x 3 map, batch 8)."""
    return _compose(CIFAR / f"{name}.yaml", [
        "optimizer.batch_size=8", "method_kwargs.proj_hidden_dim=32",
        "method_kwargs.proj_output_dim=16", "method_kwargs.lewel_hidden_dim=16",
        *TINY_HEADS[_host(name)], *overrides,
    ], crop_size)


def paired(name: str, overrides: List[str] = ()):
    """The host method and its ``_lewel`` subclass holding the same weights."""
    torch.manual_seed(0)
    cfg = tiny_cfg(name, overrides)
    host_cfg = cfg.copy()
    host_cfg.method = _host(name)
    host = ready_for_steps(METHODS[host_cfg.method](host_cfg))
    model = ready_for_steps(METHODS[name](cfg))
    missing, unexpected = model.load_state_dict(host.state_dict(), strict=False)
    assert not unexpected
    assert all(k.startswith(("lewel_head.", "momentum_lewel_neck.")) for k in missing)
    return host, model


def recording(model, monkeypatch) -> list:
    """The aligned terms ``model``'s steps compute."""
    recorded = []
    lewel_loss = model.lewel_loss
    monkeypatch.setattr(model, "lewel_loss",
                        lambda *a: recorded.append(lewel_loss(*a)) or recorded[-1])
    return recorded


# ------------------------------------------------------------------ the methods


def test_both_methods_are_registered_as_subclasses_of_their_host_method():
    assert sorted(LEWEL_METHODS) == NAMES
    solo_scaca.register()  # idempotent: nothing replaced, no warning
    for name in NAMES:
        assert METHODS[name] is LEWEL_METHODS[name]
        assert issubclass(METHODS[name], HOSTS[name]) and METHODS[_host(name)] is HOSTS[name]


@pytest.mark.parametrize("name", NAMES)
def test_lewel_weight_zero_is_exactly_the_host_method(name):
    host, model = paired(name, ["method_kwargs.lewel_weight=0"])
    assert model.lewel_head is None
    assert_same_step(host, model, tiny_batch())


@pytest.mark.parametrize("name", NAMES)
def test_the_aligned_term_is_added_to_the_host_loss_and_trains_the_neck_and_backbone(
        name, monkeypatch):
    host, model = paired(name, ["method_kwargs.lewel_weight=0.5"])
    recorded = recording(model, monkeypatch)
    batch = tiny_batch()
    host_loss, loss = host.training_step(batch, 0), model.training_step(batch, 0)
    lewel_loss, maps = recorded[0]
    assert len(recorded) == 1 and lewel_loss > 0 and len(maps) == 2
    assert maps[0].shape == (8, 4, 3, 3)
    torch.testing.assert_close(loss, host_loss + 0.5 * lewel_loss)
    host_loss.backward()
    loss.backward()
    neck = model.lewel_head.neck
    assert neck.map_head[0].weight.grad.abs().sum() > 0
    assert neck.map_head[-1].weight.grad.abs().sum() > 0
    key = "layer4.1.conv2.weight"
    grads = [dict(m.backbone.named_parameters())[key].grad for m in (host, model)]
    assert not torch.allclose(grads[0], grads[1])
    if name == "byol_lewel":  # its own projector and predictor; the momentum copy: no gradient
        assert neck.projector[0].weight.grad.abs().sum() > 0
        assert model.lewel_head.predictor[0].weight.grad.abs().sum() > 0
        assert all(p.grad is None for p in model.momentum_lewel_neck.parameters())
    else:  # SwAV's own projector gets the aligned term's gradient too
        assert not torch.allclose(host.projector[0].weight.grad, model.projector[0].weight.grad)


def test_byol_lewel_s_momentum_neck_starts_as_the_online_one_and_follows_it_by_ema():
    _, model = paired("byol_lewel")
    online, momentum = model.lewel_head.neck, model.momentum_lewel_neck
    assert (online, momentum) in model.momentum_pairs
    for a, b in zip(online.parameters(), momentum.parameters()):
        assert torch.equal(a, b) and not b.requires_grad
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    model.momentum_updater.update(online, momentum)
    tau = model.momentum_updater.cur_tau
    for a, b in zip(online.parameters(), momentum.parameters()):
        torch.testing.assert_close(b, a - tau)


@pytest.mark.parametrize("name", NAMES)
def test_each_step_logs_the_loss_and_the_maps_mechanism_metrics(name, monkeypatch):
    _, model = paired(name)
    logged = {}
    monkeypatch.setattr(model, "log", lambda name, value, **kw: logged.__setitem__(name, value))
    model.training_step(tiny_batch(), 0)
    assert {"train_lewel_loss", "train_lewel_map_entropy", "train_lewel_map_peak"} <= set(logged)
    assert 0 < logged["train_lewel_map_entropy"] <= 1
    assert 1 <= logged["train_lewel_map_peak"] <= 9


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_maps_are_bounded_distributions_over_space(name, temperature):
    torch.manual_seed(0)
    model = ready_for_steps(METHODS[name](tiny_cfg(name, [
        "backbone.name=wide_resnet28w2", f"method_kwargs.lewel_temperature={temperature}"])))
    model.training_step(tiny_batch(), 0)  # running statistics away from their start
    maps = lewel_maps(model, torch.randn(6, 3, 16, 16))
    assert model.training  # the mode is restored
    assert maps.shape == (6, 4, 4, 4)  # Wide ResNet-28-2: 16 px -> 4 x 4 map
    flat = maps.flatten(2)
    torch.testing.assert_close(flat.sum(-1), torch.ones(6, 4))
    ratio = flat.max(-1).values / flat.min(-1).values
    assert torch.all(ratio <= math.exp(2 / temperature) * (1 + 1e-5))
    assert ratio.max() > 1.01  # not uniform
    with pytest.raises(ValueError, match="no alignment maps"):
        lewel_maps(METHODS[name](tiny_cfg(name, ["method_kwargs.lewel_weight=0"])),
                   torch.randn(2, 3, 16, 16))


# ------------------------------------------------------------------ configuration


def test_lewel_hidden_dim_defaults_to_the_projector_width():
    cfg = tiny_cfg("swav_lewel", ["method_kwargs.lewel_hidden_dim=null"])
    model = METHODS["swav_lewel"](cfg)
    assert cfg.method_kwargs.lewel_hidden_dim == 32
    assert model.lewel_head.neck.map_head[0].out_channels == 32


@pytest.mark.parametrize("name, override, message", [
    ("byol_lewel", "method_kwargs.lewel_num_maps=1",
     r"method_kwargs.lewel_num_maps=1 is invalid: allowed values are an integer > 1"),
    ("swav_lewel", "method_kwargs.lewel_num_maps=2.5", r"lewel_num_maps=2.5 is invalid"),
    ("swav_lewel", "method_kwargs.lewel_weight=-1",
     r"lewel_weight=-1 is invalid: allowed values are a number >= 0"),
    ("byol_lewel", "method_kwargs.lewel_temperature=0",
     r"lewel_temperature=0 is invalid: allowed values are a number > 0"),
    ("swav_lewel", "method_kwargs.lewel_hidden_dim=0", r"lewel_hidden_dim=0 is invalid"),
    ("byol_lewel", "+method_kwargs.lewel_scale=1.0", r"unknown method_kwargs \['lewel_scale'\]"),
])
def test_bad_configs_fail_at_config_time_naming_the_key(name, override, message):
    with pytest.raises(ValueError, match=message):
        METHODS[name](tiny_cfg(name, [override]))


def test_an_unsupported_backbone_is_named():
    cfg = tiny_cfg("byol_lewel")
    cfg.backbone.name = "mlp"
    with pytest.raises(ValueError, match="backbone.name='mlp' is not supported by byol_lewel"):
        METHODS["byol_lewel"].add_and_assert_specific_cfg(cfg)


@pytest.mark.parametrize("yaml", YAMLS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_drop_in_config_mirrors_the_host_file_and_writes_every_lewel_key(yaml):
    assert {p.relative_to(SCRIPTS).as_posix() for p in YAMLS} == {
        f"{folder}/{name}.yaml" for folder in ("cifar", "imagenet-100") for name in NAMES}
    assert (yaml.with_suffix(".sh")).is_file()
    raw = OmegaConf.load(yaml)
    assert raw.method == yaml.stem and list(raw.method_kwargs)[-4:] == list(LEWEL_KEYS)
    # at their defaults: the keys removed, the method's checks give them back
    stripped = OmegaConf.create(OmegaConf.to_container(raw))
    for key in LEWEL_KEYS:
        del stripped.method_kwargs[key]
    defaults = METHODS[raw.method].add_and_assert_specific_cfg(stripped).method_kwargs
    resolved = METHODS[raw.method].add_and_assert_specific_cfg(raw).method_kwargs
    assert {k: resolved[k] for k in LEWEL_KEYS} == {k: defaults[k] for k in LEWEL_KEYS}
    host_file = (host_checkout() / "scripts" / "pretrain" / yaml.parent.name
                 / f"{_host(yaml.stem)}.yaml")
    if not host_file.exists():
        pytest.skip(f"no solo-learn checkout at {host_checkout()} (set SOLO_LEARN_ROOT)")
    ours, host = OmegaConf.load(yaml), OmegaConf.load(host_file)
    for cfg in (ours, host):
        cfg.pop("name")
        cfg.pop("method")
        for key in LEWEL_KEYS:
            cfg.method_kwargs.pop(key, None)
    assert ours == host


@pytest.mark.parametrize("yaml", YAMLS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_drop_in_config_trains_one_step(yaml, toy_data):
    host = _host(yaml.stem)
    paths = [] if yaml.parent.name == "cifar" else [
        f"data.train_path={toy_data / 'train'}", f"data.val_path={toy_data / 'val'}"]
    cfg = _compose(yaml, [
        "method_kwargs.proj_hidden_dim=32", "method_kwargs.proj_output_dim=16",
        "method_kwargs.lewel_hidden_dim=16", *TINY_HEADS[host], "optimizer.batch_size=4",
        "data.num_workers=0", *paths])
    model = ready_for_steps(METHODS[cfg.method](cfg))
    size = 32 if cfg.data.dataset.startswith("cifar") else 64
    loss = model.training_step(tiny_batch(4, size), 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.lewel_head.neck.map_head[0].weight.grad.abs().sum() > 0


# ------------------------------------------------------------------ removal, masks


def _save(name: str, cfg: DictConfig, folder: Path) -> Path:
    """A model saved as the host's Checkpointer does (state dict, args.json beside it)."""
    ckpt = folder / f"{name}-ep=0.ckpt"
    torch.save({"state_dict": METHODS[name](cfg).state_dict()}, ckpt)
    (folder / "args.json").write_text(json.dumps(OmegaConf.to_container(cfg)))
    return ckpt


@pytest.mark.parametrize("name", NAMES)
def test_the_exported_backbone_loads_strict_into_the_host_s_with_identical_features(
        name, tmp_path):
    from solo_scaca.cli.export import main as export_main
    from solo_scaca.host.backbone_io import build_backbone, load_backbone

    torch.manual_seed(0)
    cfg = tiny_cfg(name)
    ckpt = _save(name, cfg, tmp_path)
    export_main([str(ckpt), str(tmp_path / "backbone.ckpt")])
    exported = torch.load(tmp_path / "backbone.ckpt", map_location="cpu")["state_dict"]
    assert exported and all(k.startswith("backbone.") for k in exported)
    backbone = build_backbone(cfg.backbone.name, cfg.data.dataset, name)
    backbone.load_state_dict({k[len("backbone."):]: v for k, v in exported.items()}, strict=True)
    model = METHODS[name](cfg)
    model.load_state_dict(torch.load(ckpt)["state_dict"])
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(backbone.eval()(x), model.eval().backbone(x))
    assert torch.equal(load_backbone(ckpt).eval()(x), model.backbone(x))


@pytest.mark.parametrize("name", NAMES)
def test_masks_draws_a_lewel_checkpoint_s_maps(name, tmp_path, toy_data, capsys):
    from solo_scaca.cli.masks import main as masks_main
    from solo_scaca.evaluation.mask_view import load_method

    torch.manual_seed(0)
    ckpt = _save(name, tiny_cfg(name, ["backbone.name=wide_resnet28w2"], crop_size=32),
                 tmp_path)
    model = load_method(ckpt)
    assert type(model) is METHODS[name] and not model.training
    maps = lewel_maps(model, torch.randn(3, 3, 32, 32))
    assert maps.shape == (3, 4, 8, 8)  # 32 px on Wide ResNet-28-2: the 8 x 8 map
    out = tmp_path / "maps.png"
    masks_main(["--ckpt", str(ckpt), "--images", str(toy_data / "val"), "--out", str(out),
                "--n", "3", "--batch", "4"])
    assert out.stat().st_size > 0
    assert "the map most on the object" in capsys.readouterr().out  # the toy set's boxes
    weightless = _save(name, tiny_cfg(name, ["method_kwargs.lewel_weight=0"]), tmp_path)
    with pytest.raises(ValueError, match="lewel_weight=0"):
        load_method(weightless)


# ------------------------------------------------------------------ end to end


def _args(name: str, data: Path, out: Path, epochs: int) -> List[str]:
    """The shipped cifar config on the toy data: Wide ResNet-28-2 at 32 px (an 8 x 8 map)."""
    host = _host(name)
    return [
        "--config-path", str(CIFAR), "--config-name", f"{name}.yaml",
        "data.dataset=custom", "++data.no_labels=False", f"data.train_path={data / 'train'}",
        "data.val_path=null", "data.format=image_folder", "data.num_workers=0",
        "backbone.name=wide_resnet28w2", "augmentations.0.crop_size=32",
        *(["augmentations.1.crop_size=32"] if host == "byol" else []),
        "optimizer.batch_size=16", f"max_epochs={epochs}", f"checkpoint.dir={out}",
        "method_kwargs.proj_hidden_dim=32", "method_kwargs.proj_output_dim=16",
        "method_kwargs.lewel_hidden_dim=32",
        *{"byol": ["method_kwargs.pred_hidden_dim=32"],
          "swav": ["method_kwargs.num_prototypes=10"]}[host], *CPU,
    ]


@pytest.mark.parametrize("name", NAMES)
def test_the_host_main_pretrain_runs_each_method_from_its_shipped_config(
        name, toy_data, tmp_path):
    log = _run([*pretrain_command("host"), *_args(name, toy_data, tmp_path / "m", 1)],
               cwd=tmp_path)
    ckpts = list((tmp_path / "m" / name).glob("*/*-ep=0.ckpt"))
    assert len(ckpts) == 1, log[-3000:]
    state = torch.load(ckpts[0], map_location="cpu")["state_dict"]
    assert any(k.startswith("lewel_head.neck.map_head.") for k in state)
    csvs = list(tmp_path.rglob("metrics.csv"))
    assert csvs, log[-3000:]
    header = csvs[0].read_text().splitlines()[0]
    for metric in ("train_lewel_loss_epoch", "train_lewel_map_entropy_epoch",
                   "train_lewel_map_peak_epoch"):
        assert metric in header, metric


def test_swav_lewel_resumes_with_its_queue_and_neck(toy_data, tmp_path):
    """One epoch, then a second resumed from its checkpoint: the restored model (the queue the
    host creates only at train start, the neck) is the saved one."""
    out = tmp_path / "m"
    _run(["solo-scaca-pretrain", *_args("swav_lewel", toy_data, out, 1)], cwd=tmp_path)
    saved, = (out / "swav_lewel").glob("*/*-ep=0.ckpt")
    state = torch.load(saved, map_location="cpu")["state_dict"]
    assert "queue" in state and any(k.startswith("lewel_head.") for k in state)

    from solo_scaca.cli.pretrain import pretrain

    seen = {}

    class Probe(METHODS["swav_lewel"]):
        def on_train_epoch_start(self):  # after Lightning restored the checkpoint and the
            # host's on_train_start ran; before this epoch changes anything
            seen.update({k: v.detach().cpu().clone() for k, v in self.state_dict().items()})
            super().on_train_epoch_start()

    with initialize_config_dir(str(CIFAR), version_base="1.2"):
        cfg = compose("swav_lewel.yaml", overrides=[
            *_args("swav_lewel", toy_data, out, 2)[4:], f"+resume_from_checkpoint='{saved}'"])
    METHODS["swav_lewel"], original = Probe, METHODS["swav_lewel"]
    try:
        pretrain(cfg)
    finally:
        METHODS["swav_lewel"] = original
    assert seen, "the resumed run did not start an epoch"
    for key, value in state.items():
        assert torch.equal(seen[key], value), key
