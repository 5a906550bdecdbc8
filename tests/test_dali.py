"""NVIDIA DALI (``data.format=dali``) through the plugin, on CPU with ``dali.device=cpu``.

DALI is the plugin's ``dali`` extra; CI installs it. Without it these tests fail (never skip).
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tests.test_benchmarks import _cifar_dir

try:
    from solo_scaca.host import dali_cpu
    from solo.data import dali_dataloader as host
    from solo.data.pretrain_dataloader import FullTransformPipeline, NCropAugmentation

    DALI_ERROR = None
except ImportError as err:
    DALI_ERROR = str(err)

REPO = Path(__file__).resolve().parents[1]


def need_dali():
    if DALI_ERROR is not None:
        pytest.fail(
            "the DALI tests need the plugin's `dali` extra (CI installs it: "
            f"pip install --no-build-isolation \".[dali,test]\"). {DALI_ERROR}",
            pytrace=False,
        )


class FakeTrainer:
    def __init__(self, local_rank=0):
        self.local_rank = self.global_rank = local_rank
        self.world_size = local_rank + 1


class Built(Exception):
    """Raised by the recording ``pipeline`` below, to stop ``setup`` once it has been called."""


def record_pipeline_calls(monkeypatch, builder_cls):
    """Replaces the host builder's ``pipeline`` (inherited by the plugin's) by a recorder."""
    calls = []

    def pipeline(self, **kwargs):
        calls.append({"builder": type(self), "attr_device_id": self.device_id, **kwargs})
        raise Built

    monkeypatch.setattr(builder_cls, "pipeline", pipeline)
    return calls


def swav_augmentations(crop_size=32):
    """The augmentations of the host's SwAV configs (all DALI ops but equalization, which the
    host's DALI path does not have), plus a plain resize (``rrc.enabled=False``)."""
    full = {
        "rrc": {"enabled": True, "crop_min_scale": 0.14, "crop_max_scale": 1.0},
        "color_jitter": {"prob": 0.8, "brightness": 0.4, "contrast": 0.4,
                         "saturation": 0.2, "hue": 0.1},
        "grayscale": {"prob": 0.2}, "gaussian_blur": {"prob": 0.5},
        "solarization": {"prob": 0.2}, "equalization": {"prob": 0.0},
        "horizontal_flip": {"prob": 0.5}, "crop_size": crop_size, "num_crops": 1,
    }
    plain = {**full, "rrc": {"enabled": False}, "color_jitter": {"prob": 0.0},
             "grayscale": {"prob": 0.0}, "gaussian_blur": {"prob": 0.0},
             "solarization": {"prob": 0.0}, "horizontal_flip": {"prob": 0.0}}
    return [OmegaConf.create(full), OmegaConf.create(plain)]


def dali_transform(device="cpu"):
    return FullTransformPipeline([
        NCropAugmentation(
            dali_cpu.build_transform_pipeline_dali("custom", aug, dali_device=device),
            aug.num_crops,
        )
        for aug in swav_augmentations()
    ])


@pytest.fixture(scope="module")
def small_toy(tmp_path_factory) -> Path:
    """2 train and 1 val images per class (10 classes), 64 px PNG: DALI's CPU decoder reads PNG."""
    from solo_scaca.data.toy_shapes import generate_toy_shapes

    return generate_toy_shapes(tmp_path_factory.mktemp("dali") / "toy", train_per_class=2,
                               val_per_class=1, image_size=64)


def test_missing_dali_gives_a_message_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)  # import of nvidia.dali now fails
    monkeypatch.delitem(sys.modules, "solo.data.dali_dataloader", raising=False)
    monkeypatch.delitem(sys.modules, "solo_scaca.host.dali_cpu", raising=False)
    with pytest.raises(ImportError, match=r"`dali` extra"):
        importlib.import_module("solo_scaca.host.dali_cpu")


def test_device_id_is_none_on_cpu_and_the_local_rank_on_gpu():
    need_dali()
    assert dali_cpu.dali_device_id("cpu", 0) is None
    assert dali_cpu.dali_device_id("cpu", 3) is None
    assert dali_cpu.dali_device_id("gpu", 0) == 0
    assert dali_cpu.dali_device_id("gpu", 3) == 3
    with pytest.raises(ValueError, match="dali.device"):
        dali_cpu.dali_device_id("cuda", 0)


@pytest.mark.parametrize("device, expected", [("cpu", None), ("gpu", 2)])
def test_builders_keep_the_host_seed_and_set_device_id(small_toy, device, expected):
    need_dali()
    train = small_toy / "train"
    builders = [
        dali_cpu.PretrainPipelineBuilder(train, batch_size=4, device=device,
                                         transforms=dali_transform(device), device_id=2),
        dali_cpu.NormalPipelineBuilder(train, batch_size=4, device=device, device_id=2),
        dali_cpu.CustomNormalPipelineBuilder(train, batch_size=4, device=device, device_id=2),
    ]
    for builder in builders:
        assert builder.device_id == expected
        assert builder.seed == 12 + 2  # the host's seed + local rank, whatever the device


def test_pretrain_setup_on_cpu_builds_without_device_id(small_toy, monkeypatch):
    need_dali()
    calls = record_pipeline_calls(monkeypatch, host.PretrainPipelineBuilder)
    dm = dali_cpu.PretrainDALIDataModule("custom", small_toy / "train", dali_transform(), 2, 0,
                                         batch_size=4, num_workers=1, dali_device="cpu")
    dm.trainer = FakeTrainer(local_rank=1)
    with pytest.raises(Built):
        dm.setup()
    assert len(calls) == 1
    assert calls[0]["builder"] is dali_cpu.PretrainPipelineBuilder
    assert calls[0]["device_id"] is None and calls[0]["seed"] == 13
    # the host's module is left as it was
    assert host.PretrainPipelineBuilder.__module__ == "solo.data.dali_dataloader"


def test_pretrain_setup_on_gpu_is_the_hosts(small_toy, monkeypatch):
    """The GPU path, checked without a GPU: the host's builder, device_id = local rank."""
    need_dali()
    calls = record_pipeline_calls(monkeypatch, host.PretrainPipelineBuilder)
    dm = dali_cpu.PretrainDALIDataModule("custom", small_toy / "train", dali_transform("gpu"),
                                         2, 0, batch_size=4, num_workers=1, dali_device="gpu")
    dm.trainer = FakeTrainer(local_rank=1)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="dali.device=cpu"):
            dm.setup()
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    with pytest.raises(Built):
        dm.setup()
    assert calls == [{"builder": host.PretrainPipelineBuilder, "attr_device_id": 1,
                      "batch_size": 4, "num_threads": 1, "device_id": 1, "seed": 13}]
    assert dm.device == torch.device("cuda:1")


@pytest.mark.parametrize("device, builder, device_id", [
    ("cpu", "CustomNormalPipelineBuilder", None),
    ("gpu", None, 1),
])
def test_classification_setup_device_id(small_toy, monkeypatch, device, builder, device_id):
    need_dali()
    calls = record_pipeline_calls(monkeypatch, host.NormalPipelineBuilder)
    dm = dali_cpu.ClassificationDALIDataModule("custom", small_toy / "train", small_toy / "val",
                                               batch_size=4, num_workers=1, dali_device=device)
    expected = getattr(dali_cpu, builder) if builder else host.CustomNormalPipelineBuilder
    assert dm.pipeline_class is expected
    dm.trainer = FakeTrainer(local_rank=1)
    if device == "gpu" and not torch.cuda.is_available():
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    with pytest.raises(Built):
        dm.setup()
    assert calls[0]["builder"] is expected
    assert calls[0]["device_id"] == device_id and calls[0]["seed"] == 13


def test_pretrain_module_iterates_on_cpu_with_swav_augmentations(small_toy):
    need_dali()
    dm = dali_cpu.PretrainDALIDataModule("custom", small_toy / "train", dali_transform(), 2, 0,
                                         batch_size=4, num_workers=1, dali_device="cpu",
                                         encode_indexes_into_labels=True)
    dm.trainer = FakeTrainer()
    dm.setup()
    loader = dm.train_dataloader()
    for _ in range(2):  # two epochs: the host's iterator resets on CPU too
        batches = list(loader)
        assert len(batches) == len(loader) == 5  # 20 images, batch 4, last batch dropped
        seen = []
        for indexes, crops, targets in batches:
            assert [tuple(c.shape) for c in crops] == [(4, 3, 32, 32)] * 2
            assert all(c.dtype == torch.float32 and c.device.type == "cpu" for c in crops)
            # index -> label decoding: files are sorted by class, 2 per class
            assert torch.equal(targets, indexes // 2)
            seen += indexes.tolist()
        assert sorted(seen) == list(range(20))


def test_classification_module_iterates_on_cpu(small_toy):
    need_dali()
    dm = dali_cpu.ClassificationDALIDataModule("custom", small_toy / "train", small_toy / "val",
                                               batch_size=4, num_workers=1, dali_device="cpu")
    dm.trainer = FakeTrainer()
    dm.setup()
    train = list(dm.train_dataloader())
    assert len(train) == 5 and all(x.shape == (4, 3, 224, 224) for x, _ in train)
    val_labels = torch.cat([y for _, y in dm.val_dataloader()])
    assert sorted(val_labels.tolist()) == list(range(10))  # the last, partial batch is kept


def test_pretrain_command_with_dali_on_cpu(small_toy, tmp_path):
    need_dali()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    cmd = ["solo-scaca-pretrain", "--config-name", "swav_scaca_toy",
           f"data.train_path={small_toy / 'train'}", f"checkpoint.dir={tmp_path / 'm'}",
           "max_epochs=1", "optimizer.batch_size=8", "data.num_workers=1",
           "data.format=dali", "++dali.device=cpu"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{cmd} failed:\n{log[-5000:]}"
    ckpts = list((tmp_path / "m" / "swav_scaca").glob("*/*-ep=0.ckpt"))
    assert len(ckpts) == 1, log[-3000:]
    ckpt = torch.load(ckpts[0], map_location="cpu")
    assert ckpt["epoch"] == 0 and ckpt["global_step"] == 2  # 20 images, batch 8, drop last
    assert any(k.startswith("ca_head.") for k in ckpt["state_dict"])


# ------------------------------------------------------------------ CIFAR at 32 px, seeds, PNG
@pytest.fixture(scope="module")
def cifar_and_clutter(tmp_path_factory):
    """Real CIFAR-10 JPEGs (4 train, 2 test per class, 32 px) and a clutter set made of them
    (PNG canvases of 32 px)."""
    from benchmarks.data import sample_cifar
    from solo_scaca.data.clutter import generate_clutter

    base = tmp_path_factory.mktemp("dali-cifar")
    cifar = sample_cifar(_cifar_dir(), base / "cifar10", train_per_class=4, test_per_class=2)
    clutter = generate_clutter(base / "clutter", cifar, train_per_class=4, test_per_class=2)
    return {"cifar": cifar, "clutter": clutter}


def spatial_augmentations(crop_size=32):
    """The controls' augmentation (profiles' SPATIAL_AUGMENTATION, on the custom config's
    symmetric pipeline: 2 crops; the clutter cpu profile's crops are 35% instead)."""
    aug = swav_augmentations(crop_size)[0]
    aug.rrc.crop_min_scale = 0.2
    aug.color_jitter.saturation = 0.4
    aug.gaussian_blur.prob = 0.0
    aug.num_crops = 2
    return aug


def pretrain_module(path, dataset="custom", seed=None, batch_size=8):
    aug = spatial_augmentations()
    transform = FullTransformPipeline([NCropAugmentation(
        dali_cpu.build_transform_pipeline_dali(dataset, aug, dali_device="cpu"), aug.num_crops)])
    dm = dali_cpu.PretrainDALIDataModule(dataset, path, transform, 2, 0, batch_size=batch_size,
                                         num_workers=1, dali_device="cpu", seed=seed)
    dm.trainer = FakeTrainer()
    dm.setup()
    return dm


@pytest.mark.parametrize("data", ["cifar", "clutter"])
def test_cpu_pipeline_serves_32px_jpeg_and_png_folders(cifar_and_clutter, data):
    """What the gpu profile reads: CIFAR-10's JPEGs and the clutter set's PNGs at 32 px, the
    campaign's augmentation, ``data.dataset=custom``: two 32 px crops per image, normalised,
    every image once per epoch with its folder's label."""
    need_dali()
    dm = pretrain_module(cifar_and_clutter[data] / "train")
    batches = list(dm.train_dataloader())
    assert len(batches) == 5  # 40 images, batch 8
    labels = []
    for _, crops, targets in batches:
        assert [tuple(c.shape) for c in crops] == [(8, 3, 32, 32)] * 2
        assert all(torch.isfinite(c).all() and c.std() > 0.2 for c in crops)
        labels += targets.tolist()
    assert sorted(labels) == sorted(list(range(10)) * 4)


def test_host_pipeline_ignores_the_run_seed_and_the_fill_in_uses_it(cifar_and_clutter):
    """The host's module seeds DALI with 12 whatever the run's seed (seed_everything does not
    reach it); ``seed=`` gives each seed its own image order and augmentations."""
    need_dali()
    from lightning.pytorch import seed_everything

    train = cifar_and_clutter["cifar"] / "train"

    def first_batch(seed_everything_to, seed):
        seed_everything(seed_everything_to)
        _, crops, targets = next(iter(pretrain_module(train, seed=seed).train_dataloader()))
        return crops[0].clone(), targets.clone()

    host_0, host_1 = first_batch(0, None), first_batch(1, None)
    assert torch.equal(host_0[0], host_1[0]) and torch.equal(host_0[1], host_1[1])
    assert torch.equal(first_batch(0, 12)[0], host_0[0])  # seed=None is the host's 12
    ours_0, ours_1 = first_batch(0, 0), first_batch(0, 1)
    assert not torch.equal(ours_0[0], ours_1[0])
    assert torch.equal(first_batch(5, 0)[0], ours_0[0])  # the same seed draws the same


def test_gpu_setup_with_a_seed_is_the_hosts_builder_with_it(small_toy, monkeypatch):
    need_dali()
    calls = record_pipeline_calls(monkeypatch, host.PretrainPipelineBuilder)
    dm = dali_cpu.PretrainDALIDataModule("custom", small_toy / "train", dali_transform("gpu"),
                                         2, 0, batch_size=4, num_workers=1, dali_device="gpu",
                                         seed=7)
    dm.trainer = FakeTrainer(local_rank=1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    with pytest.raises(Built):
        dm.setup()
    assert calls == [{"builder": host.PretrainPipelineBuilder, "attr_device_id": 1,
                      "batch_size": 4, "num_threads": 1, "device_id": 1, "seed": 8}]


def test_parse_cfg_for_folders_lets_cifar_folders_use_dali(cifar_and_clutter, tmp_path):
    """The host's parse_cfg refuses data.format=dali for data.dataset=cifar10; the plugin's
    wrapper accepts it for CIFAR image folders only (the CIFAR stem and mean/std stay)."""
    need_dali()
    from solo.args.pretrain import parse_cfg

    from benchmarks.tiny_models import make_cfg
    from solo_scaca.host.cifar_folders import parse_cfg_for_folders

    def cfg(train_path, dataset="cifar10"):
        c = make_cfg().copy()  # any parsed pretraining config will do
        c.data.update(dataset=dataset, format="dali", train_path=str(train_path))
        return c

    folders = cifar_and_clutter["cifar"] / "train"
    with pytest.raises(AssertionError):
        parse_cfg(cfg(folders))
    parsed = parse_cfg_for_folders(parse_cfg)(cfg(folders))
    assert parsed.data.format == "dali" and parsed.data.dataset == "cifar10"
    with pytest.raises(AssertionError):  # not image folders: the host's check stands
        parse_cfg_for_folders(parse_cfg)(cfg(tmp_path))
    assert parse_cfg_for_folders(parse_cfg)(cfg(folders, "custom")).data.format == "dali"


def test_pretrain_command_with_dali_keeps_the_cifar_stem(cifar_and_clutter, tmp_path):
    """``data.dataset=cifar10 data.format=dali`` on CIFAR folders through the plugin's command:
    ResNet-18 with the host's CIFAR stem (3x3 conv1, no max-pool) at 32 px."""
    need_dali()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    cmd = ["solo-scaca-pretrain", "--config-name", "swav_scaca_toy", "data.dataset=cifar10",
           f"data.train_path={cifar_and_clutter['cifar'] / 'train'}",
           f"checkpoint.dir={tmp_path / 'm'}", "max_epochs=1", "optimizer.batch_size=8",
           "data.num_workers=1", "augmentations.0.crop_size=32", "data.format=dali",
           "++dali.device=cpu", "++seed=3"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{cmd} failed:\n{log[-5000:]}"
    ckpt = torch.load(next((tmp_path / "m").rglob("*-ep=0.ckpt")), map_location="cpu")
    assert ckpt["global_step"] == 5  # 40 images, batch 8
    assert tuple(ckpt["state_dict"]["backbone.conv1.weight"].shape) == (64, 3, 3, 3)
