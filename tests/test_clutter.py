"""The clutter bench's data command (solo-scaca-clutter-data) and its spatial metrics."""

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from solo_scaca.data.clutter import generate_clutter, main
from solo_scaca.data.layout import read_boxes
from solo_scaca.evaluation.box_metrics import border_share, box_coverage, box_masks, mask_in_box

COLOURS = {"a": (255, 0, 0), "b": (0, 255, 0), "c": (0, 0, 255), "d": (255, 255, 0)}


def solid_cifar(root: Path, per_class: int = 4) -> Path:
    """A CIFAR-like source: train/ and test/ ImageFolders, each class one solid colour with a
    one-pixel mark (so that files differ)."""
    for split in ("train", "test"):
        for name, colour in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = Image.new("RGB", (32, 32), colour)
                img.save(folder / f"{i:04d}.png")
    return root


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "DONE":
            h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_clutter_set_layout_boxes_objects_and_backgrounds(tmp_path):
    source = solid_cifar(tmp_path / "cifar")
    root = generate_clutter(tmp_path / "clutter", source, train_per_class=3, test_per_class=2,
                            seed=1)
    rows = read_boxes(root)
    counts = {}
    for r in rows:
        counts[(r["split"], r["class_name"])] = counts.get((r["split"], r["class_name"]), 0) + 1
    assert counts == {**{("train", c): 3 for c in COLOURS}, **{("test", c): 2 for c in COLOURS}}
    for r in rows:
        side = r["x1"] - r["x0"]
        assert 14 <= side <= 22 and r["y1"] - r["y0"] == side
        assert 0 <= r["x0"] and r["x1"] <= 32 and 0 <= r["y0"] and r["y1"] <= 32
        pixels = np.asarray(Image.open(root / r["path"]).convert("RGB"))
        assert pixels.shape == (32, 32, 3)
        own = np.array(COLOURS[r["class_name"]])
        # the object: the scaled source (one solid colour) fills the box
        assert (pixels[r["y0"]:r["y1"], r["x0"]:r["x1"]] == own).all()
        # the background: never the image's own class
        outside = np.ones((32, 32), bool)
        outside[r["y0"]:r["y1"], r["x0"]:r["x1"]] = False
        assert not (pixels[outside] == own).all(axis=1).any()
    with open(root / "sources.csv") as f:
        sources = {r["path"]: r["source"] for r in csv.DictReader(f)}
    assert sources["test/b/0001.png"] == "b/0001.png"  # test objects from the test split


def test_clutter_set_is_deterministic_and_cached(tmp_path):
    source = solid_cifar(tmp_path / "cifar")
    a = generate_clutter(tmp_path / "a", source, 2, 2, seed=3)
    b = generate_clutter(tmp_path / "b", source, 2, 2, seed=3)
    c = generate_clutter(tmp_path / "c", source, 2, 2, seed=4)
    assert digest(a) == digest(b) != digest(c)
    assert generate_clutter(a, source, 2, 2, seed=3) == a  # finished: returned as it is
    with pytest.raises(ValueError, match="--overwrite"):
        generate_clutter(a, source, 2, 1, seed=3)


def test_clutter_command_errors_name_the_problem(tmp_path, capsys):
    source = solid_cifar(tmp_path / "cifar", per_class=2)
    with pytest.raises(SystemExit):
        main(["--cifar", str(source), "--out", str(tmp_path / "x"), "--train-per-class", "5"])
    assert "fewer than 5 images" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--cifar", str(tmp_path / "nowhere"), "--out", str(tmp_path / "y")])
    assert "neither train/ nor train.tar.gz" in capsys.readouterr().err
    main(["--cifar", str(source), "--out", str(tmp_path / "ok"), "--train-per-class", "all",
          "--test-per-class", "1"])
    assert "8 train + 4 test images" in capsys.readouterr().out


def test_box_coverage_and_masks_on_a_known_grid():
    cover = box_coverage([(0, 0, 16, 8)], 32, (4, 4))[0]  # cells of 8 px: 2 x 1 cells
    assert torch.equal(cover, torch.tensor([[1.0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0],
                                            [0, 0, 0, 0]]))
    half = box_coverage([(4, 0, 8, 8)], 32, (4, 4))[0]  # half of one cell
    assert half[0, 0] == 0.5 and half.sum() == 0.5
    masks = box_masks([(0, 0, 16, 8), (3, 5, 29, 30)], 32, (8, 8))
    assert torch.allclose(masks.sum(dim=(1, 2)), torch.ones(2))


def test_mask_in_box_and_border_share_of_uniform_box_and_ring_masks():
    boxes = [(0, 0, 16, 16), (10, 3, 30, 25)]
    uniform = torch.full((2, 8, 8), 1 / 64)
    assert torch.allclose(mask_in_box(uniform, boxes, 32), torch.ones(2))
    assert torch.allclose(border_share(uniform), torch.ones(2))
    inside = box_masks(boxes, 32, (8, 8))
    share = box_coverage(boxes, 32, (8, 8)).mean(dim=(1, 2))
    got = mask_in_box(inside, boxes, 32)
    assert torch.isclose(got[0], 1 / share[0])  # a cell-aligned box: all the mass is inside
    assert 1 < got[1] < 1 / share[1]  # partly covered cells hold some mass outside the box
    ring = torch.zeros(1, 8, 8)
    ring[0, 0, :] = 1 / 8  # all mass on the top row: ring share is 28 / 64
    assert torch.allclose(border_share(ring), torch.tensor([64 / 28]))
    centre = torch.zeros(1, 8, 8)
    centre[0, 3:5, 3:5] = 0.25
    assert border_share(centre).item() == 0
    with pytest.raises(ValueError, match="at least 3 x 3"):
        border_share(torch.full((1, 2, 2), 0.25))


def test_boxes_follow_the_resize_and_centre_crop_of_the_masks_command(tmp_path):
    """``boxes_in_crop``: a 40 x 20 image resized to 10 px high (x 0.5) then centre-cropped to
    10 x 10 (5 px off the left); a folder without ``boxes.csv`` has no boxes."""
    from PIL import Image

    from solo_scaca.data.layout import CSV_HEADER, boxes_in_crop, write_csv

    (tmp_path / "val" / "a").mkdir(parents=True)
    image = tmp_path / "val" / "a" / "0.png"
    Image.new("RGB", (40, 20)).save(image)
    write_csv(tmp_path / "boxes.csv", CSV_HEADER, [("val", "val/a/0.png", "a", 0, 12, 4, 40, 12)])
    assert boxes_in_crop([image], 10) == [(1.0, 2.0, 10.0, 6.0)]  # x1: 20 - 5 = 15, clipped
    (tmp_path / "boxes.csv").unlink()
    assert boxes_in_crop([image], 10) is None


def test_box_summary_reads_masks_on_the_object_and_on_the_border():
    from solo_scaca.cli.masks import box_summary

    boxes = [(8, 8, 24, 24)] * 2  # the centre 16 x 16 of a 32 px image: a quarter of it
    on_object = torch.zeros(2, 8, 8)
    on_object[:, 2:6, 2:6] = 1 / 16
    assert box_summary(on_object, boxes, 32).startswith("mask-in-box 4.00, border share 0.00")
    uniform = torch.full((2, 3, 8, 8), 1 / 64)  # three alignment maps
    assert box_summary(uniform, boxes, 32).startswith(
        "mask-in-box 1.00 (mean of 3 maps; the map most on the object 1.00), border share 1.00")


def test_mask_grids_outline_the_object_s_box(tmp_path, monkeypatch):
    """``solo-scaca-masks`` on a set with boxes draws each object's box over its mask."""
    from solo_scaca.cli import masks as masks_cli

    figures = []
    monkeypatch.setattr(masks_cli, "_save", lambda fig, out, title: figures.append(fig) or out)
    images, masks = torch.rand(2, 3, 32, 32), torch.full((2, 8, 8), 1 / 64)
    boxes = [(2, 3, 20, 30), (0, 0, 32, 32)]
    for kept in (boxes, None):
        masks_cli.draw(images, torch.tensor([1, 0]), masks, 2, tmp_path / "m.png", "t", kept)
    with_boxes, without = ([p for ax in fig.axes[2::3] for p in ax.patches] for fig in figures)
    assert [(r.get_x(), r.get_y(), r.get_width(), r.get_height()) for r in with_boxes] == [
        (1.5, 2.5, 18, 27), (-0.5, -0.5, 32, 32)]
    assert without == []
