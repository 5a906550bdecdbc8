"""CAM localization: MaxBoxAcc on hand-made maps, CAMs of a tiny backbone against W_c . F(u),
the linear head, the CIFAR localization set (on a small fake source, and on the real CIFAR-10
test split when ../shared/data has it) and ``benchmarks/cam.py --tiny`` end to end."""

import csv
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from solo_scaca.evaluation.cam import (backbone_family, box_accuracy_curve, box_iou,
                            class_activation_maps, estimated_boxes, largest_component_box,
                            location_features, max_box_acc, normalize_maps,
                            train_linear_head)
from benchmarks.data import shared_data_dir
from solo_scaca.data.collage import generate_localization_set, read_source
from solo_scaca.data.layout import read_boxes
from solo_scaca.host.backbone_io import build_backbone

SIZE = 32
REAL_CIFAR = shared_data_dir() / "cifar10" / "test.tar.gz"


def _blob_cam(*regions, size=SIZE):
    """A 1 x size x size CAM: each (x0, y0, x1, y1, value) region set to value, 0 elsewhere."""
    cam = np.zeros((1, size, size), dtype=np.float32)
    for x0, y0, x1, y1, v in regions:
        cam[0, y0:y1, x0:x1] = v
    return cam


# --------------------------------------------------------------------------------------------
# MaxBoxAcc
# --------------------------------------------------------------------------------------------


def test_box_iou_uses_exclusive_corners():
    assert box_iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert box_iou((0, 0, 2, 2), (2, 0, 4, 2)) == 0.0  # touching, no shared pixel


def test_cam_peaking_exactly_in_the_box_scores_one():
    box = (5, 8, 15, 20)
    acc, threshold = max_box_acc(_blob_cam((*box, 1.0)), [box])
    assert acc == 1.0
    assert threshold == pytest.approx(0.01)  # at t = 0 the whole image is the component


def test_cam_peaking_elsewhere_scores_zero():
    cam = _blob_cam((20, 20, 30, 30, 1.0))
    acc, _ = max_box_acc(cam, [(2, 2, 10, 10)])
    assert acc == 0.0
    assert not box_accuracy_curve(cam, [(2, 2, 10, 10)]).any()


def test_best_threshold_is_returned():
    box = (10, 10, 16, 16)
    # a larger halo at 0.6 around the box: below 0.61 the component is the halo (IoU 36/256)
    cam = _blob_cam((4, 4, 20, 20, 0.6), (*box, 1.0))
    acc, threshold = max_box_acc(cam, [box])
    assert acc == 1.0 and threshold == pytest.approx(0.61)
    curve = box_accuracy_curve(cam, [box], thresholds=[0.5, 0.6, 0.7, 0.99])
    assert curve.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_largest_connected_component_picks_the_bigger_blob():
    big, small = (2, 2, 14, 14), (24, 24, 28, 28)
    cam = _blob_cam((*big, 1.0), (*small, 1.0))
    assert largest_component_box(cam[0] >= 0.5) == big
    assert estimated_boxes(cam, 0.5) == [big]
    assert max_box_acc(cam, [big])[0] == 1.0
    assert max_box_acc(cam, [small])[0] == 0.0  # the small blob is never the box
    # 8-connectivity: blocks touching at a corner are one component
    diagonal = _blob_cam((0, 0, 4, 4, 1.0), (4, 4, 8, 8, 1.0), (20, 20, 25, 25, 1.0))
    assert largest_component_box(diagonal[0] > 0) == (0, 0, 8, 8)
    assert largest_component_box(np.zeros((4, 4), bool)) is None


def test_vectorised_curve_matches_the_per_image_rule():
    rng = np.random.default_rng(0)
    smooth = F.interpolate(torch.rand(12, 1, 4, 4), size=(SIZE, SIZE), mode="bilinear")[:, 0]
    cams = np.concatenate([normalize_maps(smooth).numpy(), rng.random((12, SIZE, SIZE))])
    xy = rng.integers(0, 16, (24, 2))
    gts = np.concatenate([xy, xy + rng.integers(4, 16, (24, 2))], axis=1)
    thresholds = [0.0, 0.2, 0.5, 0.8, 0.95]
    expected = [np.mean([b is not None and box_iou(b, g) >= 0.5
                         for b, g in zip(estimated_boxes(cams, t), gts)]) for t in thresholds]
    np.testing.assert_allclose(box_accuracy_curve(cams, gts, thresholds), expected)
    with pytest.raises(ValueError, match="boxes"):
        max_box_acc(cams, gts[:3])


# --------------------------------------------------------------------------------------------
# CAMs and the linear head
# --------------------------------------------------------------------------------------------


def _resnet_map(backbone, x):
    """layer4's output by hand (torchvision ResNet forward up to the pooling)."""
    x = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(x))))
    return backbone.layer4(backbone.layer3(backbone.layer2(backbone.layer1(x))))


def test_cams_of_a_tiny_resnet18_are_w_c_dot_f():
    torch.manual_seed(0)
    backbone = build_backbone("resnet18", "cifar10").eval()
    head = torch.nn.Linear(512, 10)
    x, labels = torch.randn(3, 3, 16, 16), torch.tensor([0, 4, 9])
    assert backbone_family(backbone) == "resnet"

    raw = class_activation_maps(backbone, head, x, labels, raw=True)
    with torch.no_grad():
        fmap = _resnet_map(backbone, x)  # 3 x 512 x 3 x 3 (CIFAR stem)
        manual = torch.einsum("bchw,bc->bhw", fmap, head.weight[labels])
        logits = head(backbone(x))
    assert raw.shape == (3, 3, 3)
    torch.testing.assert_close(raw, manual, rtol=1e-4, atol=1e-5)
    # GAP backbone: the mean of the raw CAM plus the bias is the class logit
    torch.testing.assert_close(raw.mean(dim=(1, 2)) + head.bias[labels],
                               logits[torch.arange(3), labels], rtol=1e-4, atol=1e-5)

    cams = class_activation_maps(backbone, head, x, labels)
    assert cams.shape == (3, 16, 16)
    assert torch.equal(cams.amin(dim=(1, 2)), torch.zeros(3))
    assert torch.equal(cams.amax(dim=(1, 2)), torch.ones(3))
    up = F.interpolate(manual[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    lo, hi = up.amin(dim=(1, 2), keepdim=True), up.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(cams, (up - lo) / (hi - lo), rtol=1e-4, atol=1e-5)
    assert torch.equal(normalize_maps(torch.ones(2, 4, 4)), torch.zeros(2, 4, 4))


def test_cams_keep_the_backbone_mode_and_add_no_hooks():
    backbone = build_backbone("resnet18", "cifar10").train()
    hooks = dict(backbone.layer4._forward_hooks)
    class_activation_maps(backbone, torch.nn.Linear(512, 10), torch.randn(2, 3, 16, 16),
                          torch.tensor([1, 2]))
    assert backbone.training and dict(backbone.layer4._forward_hooks) == hooks


def test_wide_resnet_cams_follow_its_spatial_spec():
    torch.manual_seed(0)
    backbone = build_backbone("wide_resnet28w2", "cifar10").eval()
    assert backbone_family(backbone) == "wide_resnet"
    head = torch.nn.Linear(backbone.num_features, 10)
    x, labels = torch.randn(2, 3, 16, 16), torch.tensor([3, 7])
    pooled, per_location = location_features(backbone, x)
    torch.testing.assert_close(per_location.mean(dim=(1, 2)), pooled, rtol=1e-4, atol=1e-5)
    cams = class_activation_maps(backbone, head, x, labels, backbone_name="wide_resnet28w2")
    assert cams.shape == (2, 16, 16) and cams.min() == 0 and cams.max() == 1


def test_linear_head_fits_raw_features():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(60)
    centres = torch.randn(3, 8, generator=g) * 3
    # badly scaled raw features: the head standardises internally, and folds it back
    feats = (centres[labels] + torch.randn(180, 8, generator=g)) * 50 + 1000
    head = train_linear_head(feats, labels, num_classes=3, epochs=30, lr=0.05)
    assert isinstance(head, torch.nn.Linear) and head.weight.shape == (3, 8)
    assert (head(feats).argmax(1) == labels).float().mean() > 0.95
    again = train_linear_head(feats, labels, num_classes=3, epochs=30, lr=0.05)
    assert torch.equal(head.weight, again.weight)  # deterministic by seed


# --------------------------------------------------------------------------------------------
# localization set
# --------------------------------------------------------------------------------------------

CLASSES = ("ant", "bee", "cow")
PER_CLASS = 5


def _red(label: int) -> int:
    return 40 + 60 * label


@pytest.fixture(scope="module")
def fake_source(tmp_path_factory) -> Path:
    """An ImageFolder of 32 px PNGs: red channel constant per class, green/blue noise."""
    root = tmp_path_factory.mktemp("src") / "test"
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            a[..., 0] = _red(label)
            Image.fromarray(a).save(root / name / f"{i:04d}.png")
    return root


def _bytes(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*.png"))}


def test_localization_set_boxes_hold_the_pasted_image(fake_source, tmp_path):
    root = generate_localization_set(tmp_path / "loc", fake_source, train_per_class=3,
                                     val_per_class=2, canvas_size=48, min_side=12, max_side=30)
    rows = read_boxes(root)
    assert len(rows) == len(CLASSES) * 5
    assert (root / "boxes.csv").read_text().splitlines()[0] == \
        "split,path,class_name,label,x0,y0,x1,y1"
    with open(root / "sources.csv", newline="") as f:
        sources = {r["path"]: r["source"] for r in csv.DictReader(f)}
    used = {split: {sources[r["path"]] for r in rows if r["split"] == split}
            for split in ("train", "val")}
    assert not used["train"] & used["val"]  # disjoint source images
    assert used["val"] == {f"{c}/{i:04d}.png" for c in CLASSES for i in range(2)}
    for r in rows:
        assert r["class_name"] == CLASSES[r["label"]]
        x0, y0, x1, y1 = r["x0"], r["y0"], r["x1"], r["y1"]
        assert 0 <= x0 < x1 <= 48 and 0 <= y0 < y1 <= 48
        assert x1 - x0 == y1 - y0 and 12 <= x1 - x0 <= 30
        canvas = np.asarray(Image.open(root / r["path"]))
        assert canvas.shape == (48, 48, 3)
        with Image.open(fake_source / sources[r["path"]]) as src:
            pasted = np.asarray(src.convert("RGB").resize((x1 - x0, y1 - y0), Image.BILINEAR))
        assert np.array_equal(canvas[y0:y1, x0:x1], pasted)
        # the background is made of other classes only (red channel identifies the class)
        outside = np.ones((48, 48), bool)
        outside[y0:y1, x0:x1] = False
        reds = set(np.unique(canvas[..., 0][outside]).tolist())
        assert reds and reds <= {_red(k) for k in range(len(CLASSES)) if k != r["label"]}


def test_localization_set_is_deterministic_and_reads_tar_archives(fake_source, tmp_path):
    kwargs = dict(train_per_class=2, val_per_class=1, canvas_size=32, min_side=10, max_side=20)
    a = generate_localization_set(tmp_path / "a", fake_source, seed=3, **kwargs)
    b = generate_localization_set(tmp_path / "b", fake_source, seed=3, **kwargs)
    assert _bytes(a) == _bytes(b)
    assert (a / "boxes.csv").read_bytes() == (b / "boxes.csv").read_bytes()
    c = generate_localization_set(tmp_path / "c", fake_source, seed=4, **kwargs)
    assert _bytes(a) != _bytes(c)

    archive = tmp_path / "test.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(fake_source, arcname="test")
    assert {k: [n for n, _ in v] for k, v in read_source(archive).items()} == \
        {k: [n for n, _ in v] for k, v in read_source(fake_source).items()}
    t = generate_localization_set(tmp_path / "t", archive, seed=3, **kwargs)
    assert _bytes(t) == _bytes(a)

    # cached when asked again with the same parameters, refused with others
    assert generate_localization_set(a, fake_source, seed=3, **kwargs) == a
    with pytest.raises(ValueError, match="overwrite"):
        generate_localization_set(a, fake_source, seed=5, **kwargs)
    with pytest.raises(ValueError, match="fewer than"):
        generate_localization_set(tmp_path / "d", fake_source, train_per_class=5,
                                  val_per_class=1)


def test_localization_set_from_real_cifar10(tmp_path):
    if not REAL_CIFAR.exists():
        pytest.skip(f"real CIFAR-10 test split not found at {REAL_CIFAR} (../shared/data)")
    root = generate_localization_set(tmp_path / "cifar", REAL_CIFAR, train_per_class=1,
                                     val_per_class=1)
    rows = read_boxes(root)
    assert sorted({r["class_name"] for r in rows}) == [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert len(rows) == 20
    for r in rows:
        assert 24 <= r["x1"] - r["x0"] <= 48 and r["x1"] <= 64 and r["y1"] <= 64
        with Image.open(root / r["path"]) as img:
            assert img.size == (64, 64)


# --------------------------------------------------------------------------------------------
# benchmarks/cam.py --tiny
# --------------------------------------------------------------------------------------------


def test_cam_benchmark_tiny_end_to_end(fake_source, tmp_path):
    from benchmarks import cam as bench
    from benchmarks.tiny_models import make_tiny_checkpoint

    ckpts = [("swav", make_tiny_checkpoint(tmp_path / "swav0" / "a.ckpt", "swav", 0)),
             ("swav_scaca", make_tiny_checkpoint(tmp_path / "scaca0" / "a.ckpt", "swav_scaca", 1)),
             ("swav_scaca", make_tiny_checkpoint(tmp_path / "scaca1" / "a.ckpt", "swav_scaca", 2))]
    out = tmp_path / "out"
    runs = tmp_path / "runs"  # the accuracy benchmark's run files name method and checkpoint
    runs.mkdir()
    (runs / "swav_scaca-seed1.json").write_text(
        json.dumps({"method": "swav_scaca", "seed": 1, "checkpoint": str(ckpts[2][1])}))
    argv = ["--tiny", "--out", str(out), "--cifar-source", str(fake_source),
            "--from-runs", str(runs)]
    for label, path in ckpts[:2]:
        argv += ["--ckpt", f"{label}={path}"]
    summary = bench.main(argv)

    assert summary == out / "cam.md"
    with open(out / "cam.csv", newline="") as f:
        rows = {(r["dataset"], r["method"]): r for r in csv.DictReader(f)}
    assert set(rows) == {(d, m) for d in ("toy_shapes", "cifar_loc")
                         for m in ("centre baseline", "swav", "swav_scaca")}
    for (dataset, method), r in rows.items():
        assert 0 <= float(r["MaxBoxAcc_mean"]) <= 100
        assert 0 <= float(r["threshold_mean"]) < 1
        assert int(r["checkpoints"]) == (2 if method == "swav_scaca" else 1)
    with open(out / "cam_runs.csv", newline="") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 2 * (1 + len(ckpts))
    assert {r["pretrain_method"] for r in runs} == {"-", "swav", "swav_scaca"}
    for name in ("toy_shapes", "cifar_loc"):
        with Image.open(out / f"cam_grid_{name}.png") as img:
            assert img.format == "PNG" and img.size[0] > img.size[1] / 3
    assert sorted(p.name for p in out.iterdir()) == [  # tiny data went to a scratch folder
        "cam.csv", "cam.md", "cam_grid_cifar_loc.png", "cam_grid_toy_shapes.png",
        "cam_runs.csv", "cam_runs.md"]
    text = summary.read_text()
    assert "MaxBoxAcc" in text and "| cifar_loc | swav_scaca | 2 |" in text
    with pytest.raises(SystemExit):
        bench.main(["--out", str(out)])  # no checkpoint outside --tiny


def test_benchmark_input_size_scales_images_and_boxes(toy_data):
    from benchmarks.cam_eval import split_data

    loader, boxes, paths = split_data(toy_data, "val", (0,) * 3, (1,) * 3, 8, 0)
    big_loader, big_boxes, big_paths = split_data(toy_data, "val", (0,) * 3, (1,) * 3, 8, 0,
                                                  input_size=128)
    assert paths == big_paths and len(boxes) == len(loader.dataset) == 40
    assert loader.dataset[0][0].shape == (3, 64, 64)
    assert big_loader.dataset[0][0].shape == (3, 128, 128)
    assert np.array_equal(big_boxes, 2 * boxes)
    rows = {str(toy_data / r["path"]): r for r in read_boxes(toy_data)}
    assert [rows[p]["x0"] for p in paths] == boxes[:, 0].tolist()
