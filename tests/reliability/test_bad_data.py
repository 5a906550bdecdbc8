"""Bad images in an ImageFolder: the error names the file and earlier checkpoints survive."""

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

from solo_scaca.cli.pretrain import pretrain
from solo_scaca.host.named_errors import NamedImageLoader
from solo_scaca.data.toy_shapes import generate_toy_shapes


@pytest.fixture
def data(tmp_path_factory) -> Path:
    root = generate_toy_shapes(tmp_path_factory.mktemp("bad") / "toy", train_per_class=2,
                               val_per_class=1, image_size=64)
    return root / "train"


def _pretrain(train: Path, out: Path, *extra: str) -> None:
    with initialize_config_module("solo_scaca.configs", version_base="1.2"):
        cfg = compose("swav_scaca_toy", overrides=[
            f"data.train_path={train}", f"checkpoint.dir={out}", "data.num_workers=0",
            "optimizer.batch_size=21", "max_epochs=1", "+enable_progress_bar=False", *extra])
    pretrain(cfg)


def _truncated(path: Path) -> None:
    path.write_bytes(next(path.parent.glob("*.png")).read_bytes()[:200])


def _not_an_image(path: Path) -> None:
    path.write_text("this is not an image")


@pytest.mark.parametrize("spoil", [_truncated, _not_an_image])
def test_a_bad_image_is_named_and_the_last_checkpoint_survives(data, tmp_path, monkeypatch, spoil):
    monkeypatch.chdir(tmp_path)
    shutil.copy(next((data / "0_circle").glob("*.png")), data / "0_circle" / "extra.png")
    _pretrain(data, tmp_path / "models")  # 21 images, one batch: every file is read
    ckpt, = (tmp_path / "models" / "swav_scaca").glob("*/*-ep=0.ckpt")
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()

    bad = data / "0_circle" / "extra.png"
    spoil(bad)
    with pytest.raises(Exception, match=r"cannot read image file '.*0_circle/extra\.png'"):
        _pretrain(data, tmp_path / "models", "max_epochs=2", f"+resume_from_checkpoint='{ckpt}'")
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == digest
    assert torch.load(ckpt, map_location="cpu")["epoch"] == 0


def test_a_non_image_file_is_ignored(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (data / "0_circle" / "notes.txt").write_text("not an image, not an image extension")
    shutil.copy(next((data / "1_square").glob("*.png")), data / "1_square" / "extra.png")
    _pretrain(data, tmp_path / "models")
    assert list((tmp_path / "models" / "swav_scaca").glob("*/*-ep=0.ckpt"))


def test_an_empty_class_folder_is_named(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (data / "9_empty").mkdir()
    with pytest.raises(FileNotFoundError, match="9_empty"):
        _pretrain(data, tmp_path / "models")


def test_the_named_loader_keeps_working_loads_and_pickles():
    import pickle

    loader = pickle.loads(pickle.dumps(NamedImageLoader(len)))
    assert loader("abc") == 3
    with pytest.raises(OSError, match="cannot read image file 'x'"):
        NamedImageLoader(lambda p: 1 / 0)("x")


def test_a_nan_loss_stops_training_and_keeps_the_last_checkpoint(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(next((data / "0_circle").glob("*.png")), data / "0_circle" / "extra.png")
    _pretrain(data, tmp_path / "models")
    ckpt, = (tmp_path / "models" / "swav_scaca").glob("*/*-ep=0.ckpt")
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    monkeypatch.setattr("solo_scaca.methods.swav_scaca.ca_loss_func",
                        lambda *a, **k: torch.tensor(float("nan")))
    with pytest.raises(FloatingPointError, match=r"CA loss is nan at epoch 1, global step 1"):
        _pretrain(data, tmp_path / "models", "max_epochs=2", f"+resume_from_checkpoint='{ckpt}'")
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == digest
    assert not list((tmp_path / "models" / "swav_scaca").glob("*/*-ep=1.ckpt"))
