"""Tests for the Toy Shapes generator: layout, boxes, determinism, caching and CLI."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from solo_scaca.data.layout import read_boxes
from solo_scaca.data.toy_shapes import CLASS_NAMES, generate_toy_shapes, main

TRAIN, VAL, SIZE = 3, 2, 48


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy") / "shapes"
    return generate_toy_shapes(root, train_per_class=TRAIN, val_per_class=VAL, image_size=SIZE)


def _file_bytes(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_counts(dataset: Path) -> None:
    assert len(CLASS_NAMES) == 10 and list(CLASS_NAMES) == sorted(CLASS_NAMES)
    for split, n in (("train", TRAIN), ("val", VAL)):
        assert sorted(p.name for p in (dataset / split).iterdir()) == list(CLASS_NAMES)
        for name in CLASS_NAMES:
            files = sorted((dataset / split / name).iterdir())
            assert [p.name for p in files] == [f"{i:04d}.png" for i in range(n)]
            for p in files:
                with Image.open(p) as img:
                    assert img.format == "PNG" and img.mode == "RGB"
                    assert img.size == (SIZE, SIZE)
    assert (dataset / "DONE").is_file()
    header = (dataset / "boxes.csv").read_text().splitlines()[0]
    assert header == "split,path,class_name,label,x0,y0,x1,y1"
    rows = read_boxes(dataset)
    assert len(rows) == 10 * (TRAIN + VAL)
    assert {r["path"] for r in rows} == {p.relative_to(dataset).as_posix()
                                         for p in dataset.glob("*/*/*.png")}
    for r in rows:
        assert r["path"].split("/")[:2] == [r["split"], r["class_name"]]
        assert r["class_name"] == CLASS_NAMES[r["label"]]
        assert all(isinstance(r[k], int) for k in ("label", "x0", "y0", "x1", "y1"))


def test_imagefolder_labels_match_csv(dataset: Path) -> None:
    datasets = pytest.importorskip("torchvision.datasets")
    rows = read_boxes(dataset)
    for split in ("train", "val"):
        folder = datasets.ImageFolder(str(dataset / split))
        assert folder.class_to_idx == {name: i for i, name in enumerate(CLASS_NAMES)}
        csv_labels = {r["path"]: r["label"] for r in rows if r["split"] == split}
        seen = {Path(p).relative_to(dataset).as_posix(): y for p, y in folder.samples}
        assert seen == csv_labels
        img, label = folder[0]
        assert img.size == (SIZE, SIZE) and label == 0


def test_boxes_are_tight_and_hold_the_object(dataset: Path) -> None:
    """Some colour touches all four edges of the box, never appears outside it, covers a
    good part of it and contrasts with the background: that colour is the object."""
    for r in read_boxes(dataset):
        x0, y0, x1, y1 = r["x0"], r["y0"], r["x1"], r["y1"]
        assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
        side = max(x1 - x0, y1 - y0)
        assert 0.3 * SIZE - 1 <= side <= 0.6 * SIZE + 1
        img = np.asarray(Image.open(dataset / r["path"]).convert("RGB")).astype(np.int64)
        codes = (img[..., 0] << 16) | (img[..., 1] << 8) | img[..., 2]
        box = codes[y0:y1, x0:x1]
        outside = np.ones_like(codes, dtype=bool)
        outside[y0:y1, x0:x1] = False
        edges = [box[0], box[-1], box[:, 0], box[:, -1]]
        candidates = set.intersection(*(set(e.tolist()) for e in edges))
        candidates -= set(codes[outside].tolist())
        assert candidates, r["path"]
        obj = max(candidates, key=lambda c: int((box == c).sum()))
        assert (box == obj).mean() >= 0.2, r["path"]
        obj_rgb = np.array([(obj >> 16) & 255, (obj >> 8) & 255, obj & 255])
        background = np.median(img[outside], axis=0)
        assert np.abs(obj_rgb - background).max() >= 60, r["path"]


def test_same_seed_same_bytes_other_seed_differs(dataset: Path, tmp_path: Path) -> None:
    again = generate_toy_shapes(tmp_path / "a", TRAIN, VAL, SIZE, seed=0)
    other = generate_toy_shapes(tmp_path / "b", TRAIN, VAL, SIZE, seed=1)
    reference = _file_bytes(dataset)
    assert _file_bytes(again) == reference
    other_bytes = _file_bytes(other)
    assert other_bytes.keys() == reference.keys()
    pngs = [k for k in reference if k.endswith(".png")]
    assert all(other_bytes[k] != reference[k] for k in pngs)


def test_images_vary_within_class(dataset: Path) -> None:
    """Colour and background are random per image, so class members are not near-copies."""
    for name in CLASS_NAMES:
        imgs = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float64)
                for p in sorted((dataset / "train" / name).iterdir())]
        for a, b in zip(imgs, imgs[1:]):
            assert np.abs(a - b).mean() > 10


def test_done_marker_short_circuits(tmp_path: Path) -> None:
    root = generate_toy_shapes(tmp_path / "d", 1, 1, 32)
    sentinel = root / "train" / CLASS_NAMES[0] / "0000.png"
    sentinel.write_bytes(b"not regenerated")
    assert generate_toy_shapes(root, 1, 1, 32) == root
    assert sentinel.read_bytes() == b"not regenerated"
    generate_toy_shapes(root, 1, 1, 32, overwrite=True)
    assert sentinel.read_bytes().startswith(b"\x89PNG")


def test_done_with_other_parameters_is_refused(tmp_path: Path) -> None:
    root = generate_toy_shapes(tmp_path / "d", 1, 1, 32)
    with pytest.raises(ValueError, match="overwrite=True"):
        generate_toy_shapes(root, 1, 1, 48)


def test_half_written_folder_is_regenerated(tmp_path: Path) -> None:
    reference = _file_bytes(generate_toy_shapes(tmp_path / "ref", 2, 1, 32))
    root = generate_toy_shapes(tmp_path / "half", 2, 1, 32)
    (root / "DONE").unlink()
    (root / "boxes.csv").unlink()
    (root / "val" / CLASS_NAMES[3] / "0000.png").write_bytes(b"truncated")
    (root / "train" / CLASS_NAMES[5] / "0007.png").write_bytes(b"stale")
    assert _file_bytes(generate_toy_shapes(root, 2, 1, 32)) == reference


def test_cli_writes_dataset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli"
    main(["--out", str(out), "--train-per-class", "2", "--val-per-class", "1",
          "--image-size", "32", "--seed", "3"])
    printed = capsys.readouterr().out
    assert str(out) in printed and "20 train" in printed and "10 val" in printed
    assert len(list(out.glob("train/*/*.png"))) == 20
    assert len(list(out.glob("val/*/*.png"))) == 10
    assert len(read_boxes(out)) == 30 and (out / "DONE").is_file()


@pytest.mark.parametrize("kwargs, message", [
    ({"image_size": 31}, "image_size must be >= 32"),
    ({"train_per_class": 0}, "train_per_class must be >= 1"),
    ({"val_per_class": 0}, "val_per_class must be >= 1"),
    ({"seed": -1}, "seed must be >= 0"),
])
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_toy_shapes(tmp_path / "bad", **kwargs)
    assert not (tmp_path / "bad").exists()


def test_cli_bad_argument_exits_with_message(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "bad"), "--image-size", "16"])
    assert exc.value.code == 2
    assert "image_size must be >= 32" in capsys.readouterr().err


def test_plain_backgrounds_have_no_blobs_or_lines(tmp_path: Path) -> None:
    """clutter=False draws the object on the smooth colour field alone: outside the object's
    box, the background has no sharp edges (the blobs' and lines' edges jump by > 60 per
    channel sum; the bilinear field never does), where the cluttered one has many."""
    from solo_scaca.data.toy_shapes import render_image

    def background_jumps(img: Image.Image, box: tuple) -> int:
        x = np.asarray(img).astype(int)
        jump = np.abs(np.diff(x, axis=1)).sum(axis=2) > 60
        x0, y0, x1, y1 = box
        jump[max(0, y0 - 1):y1 + 1, max(0, x0 - 2):x1 + 1] = False  # the object's own edges
        return int(jump.sum())

    for label, name in enumerate(CLASS_NAMES):
        seed = (0, 0, label, 0)
        plain, box = render_image(name, np.random.default_rng(seed), 64, clutter=False)
        assert background_jumps(plain, box) == 0, name
        cluttered, box = render_image(name, np.random.default_rng(seed), 64)
        assert background_jumps(cluttered, box) > 0, name
    root = generate_toy_shapes(tmp_path / "plain", train_per_class=1, val_per_class=1,
                               image_size=32, clutter=False)
    assert '"clutter": false' in (root / "DONE").read_text()
    with pytest.raises(ValueError, match="clutter"):
        generate_toy_shapes(tmp_path / "plain", train_per_class=1, val_per_class=1,
                            image_size=32)


def test_cli_plain_flag(tmp_path: Path) -> None:
    main(["--out", str(tmp_path / "p"), "--train-per-class", "1", "--val-per-class", "1",
          "--image-size", "32", "--plain"])
    assert '"clutter": false' in (tmp_path / "p" / "DONE").read_text()
