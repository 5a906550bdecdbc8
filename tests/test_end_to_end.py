"""End to end on the generated toy-shapes data: pretraining through the plugin's command and
through the host's unmodified main_pretrain.py, removal of the add-on, the host's linear
evaluator and the k-NN evaluator."""

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from omegaconf import OmegaConf
from solo.args.linear import parse_cfg as parse_linear_cfg
from solo.methods.linear import LinearModel

from solo_scaca import SwAVSCACA
from solo_scaca_commands import HARMLESS
from solo_scaca.cli.export import main as export_main
from solo_scaca.host.backbone_io import load_backbone
from solo_scaca.host.features import extract_features, image_folder_loader, knn_accuracy
from tests.conftest import host_checkout, pretrain_command

CPU = ["accelerator=cpu", "devices='1'", "strategy=auto", "sync_batchnorm=False", "precision=32",
       "wandb.enabled=False", "++performance.disable_channel_last=True"]


def _run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


def _small_run(toy_data: Path, out: Path, epochs: int):
    return [
        "--config-name", "swav_scaca_toy",
        f"data.train_path={toy_data / 'train'}",
        f"checkpoint.dir={out}",
        f"max_epochs={epochs}",
        "optimizer.batch_size=16",
        "data.num_workers=0",
    ]


@pytest.fixture(scope="module")
def pretrained(toy_data, tmp_path_factory) -> Path:
    """A 2-epoch swav_scaca run through the plugin's installed command."""
    out = tmp_path_factory.mktemp("pretrain")
    log = _run(["solo-scaca-pretrain", *_small_run(toy_data, out / "models", 2)], cwd=out)
    assert log.count("no CUDA device found, using the host's CPU settings") == (
        0 if torch.cuda.is_available() else 1
    )
    ckpts = sorted((out / "models" / "swav_scaca").glob("*/*-ep=1.ckpt"))
    assert len(ckpts) == 1, log[-3000:]
    # the host stack's known-harmless warnings are hidden by the command (solo_scaca_commands)
    assert not [m for m, _ in HARMLESS if re.search(m, log)], log[-3000:]
    return ckpts[0]


def test_pretraining_writes_a_checkpoint_with_the_add_on(pretrained):
    ckpt = torch.load(pretrained, map_location="cpu")
    assert ckpt["epoch"] == 1
    keys = ckpt["state_dict"].keys()
    assert any(k.startswith("ca_head.phi_q") for k in keys)
    assert any(k.startswith("backbone.layer4") for k in keys)


def test_add_on_removal_keeps_backbone_weights_and_outputs(pretrained, tmp_path):
    args = OmegaConf.create((pretrained.parent / "args.json").read_text())
    model = SwAVSCACA(args)
    model.load_state_dict(torch.load(pretrained, map_location="cpu")["state_dict"], strict=True)
    model.eval()

    exported = tmp_path / "backbone.ckpt"
    export_main([str(pretrained), str(exported)])  # the solo-scaca-export command
    exported_state = torch.load(exported, map_location="cpu")["state_dict"]
    assert exported_state.keys() == {k for k in model.state_dict() if k.startswith("backbone.")}

    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)["feats"]
        for path in (pretrained, exported):
            backbone = load_backbone(path).eval()  # strict=True inside
            assert torch.equal(backbone(x), reference)
            for name, tensor in backbone.state_dict().items():
                assert torch.equal(tensor, model.backbone.state_dict()[name])


def test_host_linear_model_trains_one_epoch_on_the_backbone(pretrained, toy_data):
    backbone = load_backbone(pretrained)
    frozen = {k: v.clone() for k, v in backbone.state_dict().items()}
    cfg = OmegaConf.create({
        "name": "linear-toy", "pretrained_feature_extractor": str(pretrained),
        "backbone": {"name": "resnet18"}, "pretrain_method": "swav_scaca",
        "data": {"dataset": "custom", "train_path": str(toy_data / "train"),
                 "val_path": str(toy_data / "val"), "format": "image_folder", "num_workers": 0},
        "optimizer": {"name": "sgd", "batch_size": 16, "lr": 0.1, "weight_decay": 0},
        "scheduler": {"name": "step", "lr_decay_steps": [60]},
        "checkpoint": {"enabled": False}, "auto_resume": {"enabled": False},
        "max_epochs": 1, "devices": "1", "accelerator": "cpu",
    })
    OmegaConf.set_struct(cfg, False)
    cfg = parse_linear_cfg(cfg)
    model = LinearModel(backbone, loss_func=torch.nn.CrossEntropyLoss(), mixup_func=None, cfg=cfg)
    before = model.classifier.weight.detach().clone()
    trainer = Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(model, image_folder_loader(toy_data / "train", 64, 16, 0),
                image_folder_loader(toy_data / "val", 64, 16, 0))
    assert trainer.current_epoch == 1
    assert not torch.equal(model.classifier.weight, before)
    assert 0 <= float(trainer.callback_metrics["val_acc1"]) <= 100
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, frozen[k]), k  # the host freezes the backbone


def test_knn_command_runs_on_the_checkpoint(pretrained, toy_data):
    log = _run([sys.executable, "-m", "solo_scaca.cli.knn", "--ckpt", str(pretrained),
                "--train-path", str(toy_data / "train"), "--val-path", str(toy_data / "val"),
                "--image-size", "64", "--k", "5", "--num-workers", "0"], cwd=toy_data)
    printed = float(re.search(r"kNN k=5 \(cosine\): top-1 ([\d.]+)%", log).group(1))
    backbone = load_backbone(pretrained)
    train, val = (extract_features(backbone, image_folder_loader(toy_data / s, 64, 128, 0))
                  for s in ("train", "val"))
    assert printed == pytest.approx(knn_accuracy(train, val, ks=(5,))[5][0], abs=0.01)


def test_host_main_pretrain_runs_swav_scaca_unmodified(toy_data, tmp_path):
    main_pretrain = host_checkout() / "main_pretrain.py"
    if not main_pretrain.exists():
        pytest.skip(f"no solo-learn checkout at {main_pretrain.parent} (set SOLO_LEARN_ROOT)")
    log = _run([sys.executable, str(main_pretrain), *_small_run(toy_data, tmp_path / "m", 1),
                *CPU], cwd=tmp_path)
    ckpts = list((tmp_path / "m" / "swav_scaca").glob("*/*-ep=0.ckpt"))
    assert len(ckpts) == 1, log[-3000:]
    state = torch.load(ckpts[0], map_location="cpu")["state_dict"]
    assert any(k.startswith("ca_head.") for k in state)


def test_the_mechanism_metrics_are_in_the_metrics_csv_of_the_toy_run(pretrained):
    import csv

    out = pretrained.parents[3]
    files = list(out.rglob("metrics.csv"))
    assert len(files) == 1, files
    rows = list(csv.DictReader(files[0].open()))
    for name in ("train_ca_mask_entropy", "train_ca_mask_peak", "train_ca_partner_sensitivity",
                 "train_ca_partner_same_prototype", "train_ca_partner_same_class"):
        epochs = {int(r["epoch"]): float(r[f"{name}_epoch"]) for r in rows if r.get(f"{name}_epoch")}
        assert sorted(epochs) == [0, 1], name
        assert all(math.isfinite(v) for v in epochs.values()), name
    entropy = [float(r["train_ca_mask_entropy_epoch"]) for r in rows
               if r.get("train_ca_mask_entropy_epoch")]
    assert all(0 < v <= 1 for v in entropy)


@pytest.mark.parametrize("variant,entry", [("method_kwargs.ca_mask=uniform", "plugin"),
                                           ("method_kwargs.ca_keys=features", "host")])
def test_controls_train_through_the_plugin_command_and_the_host_main_pretrain(
        variant, entry, toy_data, tmp_path):
    """Each control through one of the two entry points (both are the same config path)."""
    cmd = pretrain_command(entry)
    log = _run([*cmd, *_small_run(toy_data, tmp_path / "m", 1), variant, *CPU], cwd=tmp_path)
    ckpts = list((tmp_path / "m" / "swav_scaca").glob("*/*-ep=0.ckpt"))
    assert len(ckpts) == 1, log[-3000:]
    args = (ckpts[0].parent / "args.json").read_text()
    key, value = variant.split(".", 1)[1].split("=")
    assert f'"{key}": "{value}"' in args
    state = torch.load(ckpts[0], map_location="cpu")["state_dict"]
    assert not any(k.startswith("ca_head.") for k in state)  # neither variant learns phi_q/phi_k


def test_masks_command_draws_the_checkpoint_s_own_pairs(pretrained, toy_data, tmp_path, capsys):
    from solo_scaca.cli.masks import image_files, main as masks_main
    from solo_scaca.evaluation.mask_view import batch_masks, load_method

    out = tmp_path / "masks.png"
    masks_main(["--ckpt", str(pretrained), "--images", str(toy_data / "val"), "--out", str(out),
                "--n", "3", "--batch", "12"])
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out  # the toy set has boxes: where the masks sit is printed
    assert "mask-in-box" in printed and "over 12 images" in printed  # (a 2 x 2 map: no border)

    files = image_files(toy_data / "val", 12)
    assert len({f.parent for f in files}) == 10  # classes interleaved, not the first folder
    model = load_method(pretrained)
    images = torch.randn(6, 3, 64, 64)
    result = batch_masks(model, images)
    assert result.masks.shape[0] == 6 and torch.all(result.partners != torch.arange(6))
    torch.testing.assert_close(result.masks.flatten(1).sum(1), torch.ones(6))
    again = batch_masks(model, images)
    assert torch.equal(again.partners, result.partners) and torch.equal(again.masks, result.masks)

    exported = tmp_path / "backbone.ckpt"
    export_main([str(pretrained), str(exported)])
    with pytest.raises(ValueError, match="not an exported backbone"):
        load_method(exported)
    with pytest.raises(ValueError, match="cannot be paired"):
        batch_masks(model, images[:1])


def test_the_host_detectron2_converter_takes_a_swav_scaca_checkpoint(pretrained, tmp_path):
    """The host's ``convert_model_to_detectron2.py`` turns a swav_scaca checkpoint (whole, or
    its exported backbone) into the same detectron2 keys as a plain SwAV checkpoint, with the
    backbone's own weights: the add-on leaves nothing behind."""
    import pickle

    from solo.methods.swav import SwAV

    script = host_checkout() / "downstream" / "object_detection" / "convert_model_to_detectron2.py"
    if not script.exists():
        pytest.skip(f"no host checkout at {host_checkout()} (set SOLO_LEARN_ROOT to a solo-learn "
                    "clone): the converter is a script of the repository, not of the package")
    exported = tmp_path / "backbone.ckpt"
    export_main([str(pretrained), str(exported)])
    args = OmegaConf.create((pretrained.parent / "args.json").read_text())
    args.method = "swav"
    plain = tmp_path / "swav.ckpt"
    torch.save({"state_dict": SwAV(args).state_dict()}, plain)

    converted = {}
    for name, ckpt in (("whole", pretrained), ("exported", exported), ("swav", plain)):
        out = tmp_path / f"{name}.pkl"
        _run([sys.executable, str(script), "--pretrained_feature_extractor", str(ckpt),
              "--output_detectron_model", str(out)], cwd=tmp_path)
        with out.open("rb") as f:
            converted[name] = pickle.load(f)["model"]
    keys = converted["swav"].keys()
    assert "stem.conv1.weight" in keys and any(k.startswith("res5.") for k in keys)
    assert converted["whole"].keys() == converted["exported"].keys() == keys
    backbone = torch.load(exported, map_location="cpu")["state_dict"]
    for name in ("whole", "exported"):
        got = converted[name]["res5.1.conv2.weight"]
        assert (got == backbone["backbone.layer4.1.conv2.weight"].numpy()).all()
