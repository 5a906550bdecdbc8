"""CIFAR as image folders in the plugin's commands: the host's CIFAR stem and transforms, data
read from ``<class>/<image>`` folders (no download)."""

import subprocess
from pathlib import Path

import pytest
import torch

from solo_scaca.host.cifar_folders import classification_loaders, is_image_folder, loading_name
from solo_scaca.host.backbone_io import load_backbone

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture(scope="module")
def cifar_folders(tmp_path_factory) -> Path:
    """A CIFAR-like ImageFolder (10 classes, 32 px, 4 train and 2 val images each)."""
    from solo_scaca.data.toy_shapes import generate_toy_shapes

    return generate_toy_shapes(tmp_path_factory.mktemp("cifar") / "c10",
                               train_per_class=4, val_per_class=2, image_size=32)


def test_only_cifar_given_as_folders_is_read_as_folders(cifar_folders, tmp_path):
    assert is_image_folder(cifar_folders / "train")
    assert loading_name("cifar10", cifar_folders / "train") == "custom"
    assert loading_name("cifar10", tmp_path) == "cifar10"  # torchvision's files: the host's way
    assert loading_name("custom", cifar_folders / "train") == "custom"
    assert loading_name("imagenet", cifar_folders / "train") == "imagenet"
    train, val = classification_loaders("cifar10", cifar_folders / "train",
                                        cifar_folders / "val", "image_folder", 8, 0)
    x, y = next(iter(val))
    assert x.shape[-2:] == (32, 32) and len(train.dataset) == 40 and len(val.dataset) == 20
    with pytest.raises(ValueError, match="data.val_path must be one too"):
        classification_loaders("cifar10", cifar_folders / "train", tmp_path, "image_folder", 8, 0)


def test_pretrain_and_linear_commands_give_the_cifar_stem_on_cifar_folders(cifar_folders,
                                                                             tmp_path):
    cmd = ["solo-scaca-pretrain", "--config-path", str(SCRIPTS / "pretrain" / "cifar"),
           "--config-name", "swav_scaca.yaml", "data.dataset=cifar10",
           f"data.train_path={cifar_folders / 'train'}", f"data.val_path={cifar_folders / 'val'}",
           "data.format=image_folder", "data.num_workers=0", "optimizer.batch_size=8",
           "max_epochs=1", "method_kwargs.num_prototypes=10", "method_kwargs.queue_size=0",
           f"checkpoint.dir={tmp_path / 'models'}", "auto_resume.enabled=False",
           "++limit_train_batches=2", "++limit_val_batches=1"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    ckpt = next((tmp_path / "models" / "swav_scaca").glob("*/*-ep=0.ckpt"))
    backbone = load_backbone(ckpt)
    assert backbone.conv1.kernel_size == (3, 3) and backbone.conv1.stride == (1, 1)
    assert isinstance(backbone.maxpool, torch.nn.Identity)
    assert backbone(torch.randn(1, 3, 32, 32)).shape == (1, 512)

    cmd = ["solo-scaca-linear", "--config-path", str(SCRIPTS / "linear" / "cifar"),
           "--config-name", "swav_scaca.yaml", f"pretrained_feature_extractor='{ckpt}'",
           "data.dataset=cifar10", f"data.train_path={cifar_folders / 'train'}",
           f"data.val_path={cifar_folders / 'val'}", "data.format=image_folder",
           "data.num_workers=0", "optimizer.batch_size=8", "max_epochs=1",
           f"checkpoint.dir={tmp_path / 'linear'}", "auto_resume.enabled=False"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert list((tmp_path / "linear" / "linear").glob("*/*-ep=0.ckpt"))
