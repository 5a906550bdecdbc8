"""The clutter campaign (``python3 -m benchmarks clutter``) and the incentive check
(``python3 -m benchmarks incentive``) on tiny sizes."""

import json
import math

import pytest
import torch

from benchmarks import clutter, incentive, profiles, runs
from benchmarks import data as bench_data
from benchmarks.__main__ import main as bench_main
from benchmarks.campaign import RANDOM_INIT
from benchmarks.tiny_models import make_tiny_checkpoint
from solo_scaca.addon.mechanism_metrics import mask_entropies
from solo_scaca.data.clutter import generate_clutter
from tests.test_benchmarks import _cifar_dir, _csv
from tests.test_clutter import solid_cifar

ARMS = ["swav_scaca (default)", "swav_lewel"]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    base = tmp_path_factory.mktemp("clutter")
    cifar = bench_data.sample_cifar(_cifar_dir(), base / "cifar10", train_per_class=8,
                                    test_per_class=4)
    argv = ["clutter", "--profile", "tiny", "--out", str(base / "results"), "--cifar-dir",
            str(cifar), "--data-root", str(cifar), "--work-dir",
            str(base / "work"), "--arms", *ARMS]
    bench_main(argv)
    return {"argv": argv, "dir": base / "results" / "tiny"}


def test_clutter_table_has_accuracies_localization_and_spatial_metrics(campaign):
    columns, rows = _csv(campaign["dir"] / "clutter.csv")
    by_arm = {r["arm"]: r for r in rows}
    centre = by_arm.pop("centre baseline (no model)")
    assert 0 <= float(centre["MaxBoxAcc"]) <= 100 and centre["kNN-20"] == ""
    assert list(by_arm) == ["random init", *(a for a in clutter.ARMS if a in ARMS)]
    for row in by_arm.values():
        for key in ("kNN-20", "linear", "clean kNN-20", "clean linear", "MaxBoxAcc"):
            assert 0 <= float(row[key]) <= 100
    assert by_arm["random init"]["mask-in-box"] == ""
    for arm in ARMS:  # masks (swav_scaca) and alignment maps (swav_lewel) measured
        assert float(by_arm[arm]["mask-in-box"]) > 0
        assert float(by_arm[arm]["mean mask in box"]) > 0
        assert float(by_arm[arm]["border share"]) > 0
        assert 0 < float(by_arm[arm]["entropy"]) <= 1
    assert float(by_arm["swav_lewel"]["best map in box"]) >= float(by_arm["swav_lewel"]["mask-in-box"])


def test_mask_scores_tell_masks_that_follow_the_object_from_a_fixed_bias():
    """Masks on each image's box score above their mean mask; one fixed mask for every image
    scores its own mean's, above 1 where it keeps off the border; LEWEL's maps get the best."""
    from solo_scaca.evaluation.box_metrics import box_masks

    gen = torch.Generator().manual_seed(0)
    corner = torch.randint(0, 9, (64, 2), generator=gen).float()
    boxes = torch.cat([corner, corner + torch.randint(18, 24, (64, 1), generator=gen)], dim=1)
    on_box = clutter.mask_scores(box_masks(boxes, 32, (8, 8)), boxes)
    assert on_box["mask_in_box"] > on_box["mask_in_box_prior"] + 0.2
    centre = torch.zeros(8, 8)
    centre[1:-1, 1:-1] = 1
    fixed = clutter.mask_scores((centre / centre.sum()).expand(64, 8, 8), boxes)
    assert fixed["mask_in_box"] == pytest.approx(fixed["mask_in_box_prior"]) and fixed[
        "mask_in_box"] > 1.1
    assert fixed["border_share"] == 0 and "mask_in_box_best_map" not in fixed
    maps = clutter.mask_scores(torch.stack([box_masks(boxes, 32, (8, 8)),
                                            centre.expand(64, 8, 8) / centre.sum()], dim=1), boxes)
    assert maps["mask_in_box_best_map"] == pytest.approx(on_box["mask_in_box"])


def test_spatial_arms_get_a_mask_grid_on_the_results_page(campaign):
    for arm in ARMS:  # swav_scaca's masks, swav_lewel's maps, with their boxes
        assert (campaign["dir"] / f"clutter-masks-{clutter.slug(arm)}-seed0.png").stat(
            ).st_size > 5_000


def test_mask_grids_skip_uniform_masks_and_say_a_missing_checkpoint(tmp_path, capsys):
    runs_dir = tmp_path / clutter.RUNS_DIR
    runs_dir.mkdir()
    for arm in ("swav_scaca (default)", "ca_mask=uniform", "swav"):
        clutter.run_file_of(runs_dir, arm, 1).write_text(json.dumps(
            {"arm": arm, "seed": 1, "clean_knn20_top1": 1.0,
             "checkpoint": str(tmp_path / "gone.ckpt"), "test_path": str(tmp_path)}))
    assert clutter.draw_mask_grids(tmp_path) == []
    said = capsys.readouterr().out
    assert "masks of swav_scaca (default): no checkpoint" in said
    assert "ca_mask=uniform" not in said and "masks of swav:" not in said
    assert not list(tmp_path.glob("*.png"))


def test_clutter_campaign_resumes_and_finishes_an_interrupted_evaluation(campaign):
    runs_dir = campaign["dir"] / clutter.RUNS_DIR
    path = clutter.run_file_of(runs_dir, "swav_lewel", 0)
    before = {p.name: p.stat().st_mtime for p in runs_dir.glob("*.json")}
    bench_main(campaign["argv"])  # everything done: nothing is rerun
    assert before == {p.name: p.stat().st_mtime for p in runs_dir.glob("*.json")}
    run = json.loads(path.read_text())
    for key in clutter.LEWEL_CURVES:  # the maps' metrics per epoch
        assert len(run[f"{key}_per_epoch"]) == 1, key
    assert 0 < run["train_lewel_map_entropy_per_epoch"][0] <= 1
    pretrained_in = run["pretrain_s"]
    for key in [k for k in run if k.startswith("clean_") or k in ("maxboxacc", "mask_in_box")]:
        del run[key]  # as if stopped after the pretraining's evaluation
    path.write_text(json.dumps(run))
    bench_main(campaign["argv"])
    redone = json.loads(path.read_text())
    assert "clean_knn20_top1" in redone and "mask_in_box" in redone
    assert redone["pretrain_s"] == pretrained_in  # not pretrained again
    prior = redone.pop("mask_in_box_prior")  # a run file written before the mean mask's metric
    path.write_text(json.dumps(redone))
    assert clutter.pending_pairs(runs_dir, [("swav_lewel", 0)]) == [("swav_lewel", 0)]
    bench_main(campaign["argv"])
    assert json.loads(path.read_text()) == {**redone, "mask_in_box_prior": prior}


def test_an_objective_arm_is_compared_with_its_own_uniform_control(tmp_path):
    """``ca_objective=O`` is tested against ``ca_objective=O,ca_mask=uniform`` (not against the
    default objective's control) and against swav."""
    runs_dir = tmp_path / "cpu" / clutter.RUNS_DIR
    runs_dir.mkdir(parents=True)
    values = {"swav": 30.0, "ca_mask=uniform": 10.0, "ca_objective=co": 32.0,
              "ca_objective=co,ca_mask=uniform": 20.0}
    for arm, value in values.items():
        for seed, jitter in enumerate((-0.5, 0.0, 0.5)):
            run = {"arm": arm, "seed": seed, "knn20_top1": value + jitter,
                   "knn200_top1": value, "linear_top1": value + jitter,
                   "clean_knn20_top1": value - 2 * jitter,
                   "clean_linear_top1": value, "maxboxacc": value + jitter}
            clutter.run_file_of(runs_dir, arm, seed).write_text(json.dumps(run))
    assert clutter.ARMS["ca_objective=co,ca_mask=uniform"][2] == (
        "method_kwargs.ca_objective=co", "method_kwargs.ca_mask=uniform")
    clutter.write_tables(tmp_path / "cpu", clutter.PROFILES["clutter"]["tiny"])
    _, rows = _csv(tmp_path / "cpu" / "clutter.csv")
    row = {r["arm"]: r for r in rows}["ca_objective=co"]
    assert row["vs uniform"].startswith("kNN-20 +12.00 *")  # 32 - 20, not 32 - 10
    assert row["vs base"].startswith("kNN-20 +2.00 *")
    assert "; clean kNN-20 +12.00 *" in row["vs uniform"]  # what an objective may not lose


def test_single_seed_arms_are_compared_without_a_noise_verdict(tmp_path):
    runs_dir = tmp_path / "cpu" / clutter.RUNS_DIR
    runs_dir.mkdir(parents=True)
    for arm, value in (("swav", 30.0), ("swav_lewel", 28.0)):
        run = {"arm": arm, "seed": 0, **{k: value for k in (
            "knn20_top1", "knn200_top1", "linear_top1", "clean_knn20_top1",
            "clean_linear_top1", "maxboxacc")}}
        clutter.run_file_of(runs_dir, arm, 0).write_text(json.dumps(run))
    clutter.write_tables(tmp_path / "cpu", clutter.PROFILES["clutter"]["tiny"])
    _, rows = _csv(tmp_path / "cpu" / "clutter.csv")
    assert {r["arm"]: r for r in rows}["swav_lewel"]["vs base"].startswith(
        "kNN-20 -2.00 (1 seed)")


def test_the_table_names_what_set_changed_from_the_profile(tmp_path):
    """Run files measured with ``--set`` (a field, a dotted Hydra key) are not described by the
    profile's own text alone: the note names each change."""
    import dataclasses

    from benchmarks import profiles

    tiny = clutter.PROFILES["clutter"]["tiny"]
    probe = dataclasses.replace(tiny, epochs=3, hydra_overrides=profiles.with_override(
        tiny.hydra_overrides, "augmentations.0.rrc.crop_min_scale=0.35"))
    runs_dir = tmp_path / "tiny" / clutter.RUNS_DIR
    runs_dir.mkdir(parents=True)
    run = {"arm": "swav", "seed": 0, "base_settings": profiles.settings_of(probe),
           **{k: 30.0 for k in ("knn20_top1", "knn200_top1", "linear_top1",
                                "clean_knn20_top1", "clean_linear_top1", "maxboxacc")}}
    clutter.run_file_of(runs_dir, "swav", 0).write_text(json.dumps(run))
    text = clutter.write_tables(tmp_path / "tiny", tiny).read_text()
    assert ("Settings changed from the profile (`--set`): `epochs=3`, "
            "`augmentations.0.rrc.crop_min_scale=0.35`.") in text
    run["base_settings"] = profiles.settings_of(tiny)
    clutter.run_file_of(runs_dir, "swav", 0).write_text(json.dumps(run))
    assert "Settings changed" not in clutter.write_tables(tmp_path / "tiny", tiny).read_text()


def test_byol_arms_default_to_one_seed_and_the_table_says_why(tmp_path):
    """BYOL's arms get one seed unless --seeds asks more; the note gives BYOL's gains over
    random init from the run files, and goes once a second seed lands."""
    pairs = clutter.plan(clutter.PROFILES["clutter"]["cpu"], ["swav", "byol", "byol_lewel"])
    assert [p for p in pairs if p[0] != "swav"] == [("byol", 0), ("byol_lewel", 0)]
    assert ("byol", 2) in clutter.plan(clutter.PROFILES["clutter"]["cpu"], ["byol"], 3)
    runs_dir = tmp_path / "cpu" / clutter.RUNS_DIR
    runs_dir.mkdir(parents=True)
    keys = ("knn20_top1", "knn200_top1", "linear_top1", "clean_knn20_top1",
            "clean_linear_top1", "maxboxacc")
    for arm, seed, value in ((clutter.RANDOM_INIT, 0, 20.0), ("byol", 0, 22.5),
                             ("byol_lewel", 0, 23.0)):
        clutter.run_file_of(runs_dir, arm, seed).write_text(
            json.dumps({"arm": arm, "seed": seed, **{k: value for k in keys}}))
    table = clutter.write_tables(tmp_path / "cpu", clutter.PROFILES["clutter"]["tiny"])
    assert "BYOL does not learn at this budget (clutter kNN-20 +2.5 over random init" in (
        table.read_text())
    clutter.run_file_of(runs_dir, "byol", 1).write_text(
        json.dumps({"arm": "byol", "seed": 1, **{k: 22.5 for k in keys}}))
    table = clutter.write_tables(tmp_path / "cpu", clutter.PROFILES["clutter"]["tiny"])
    assert "does not learn" not in table.read_text()
    clutter.run_file_of(runs_dir, "byol", 1).unlink()
    clutter.run_file_of(runs_dir, "byol", 0).write_text(
        json.dumps({"arm": "byol", "seed": 0, **{k: 26.0 for k in keys}}))
    table = clutter.write_tables(tmp_path / "cpu", clutter.PROFILES["clutter"]["tiny"])
    assert "`byol` learns here (clutter kNN-20 +6.0 over random init)" in table.read_text()


def test_the_profile_s_object_sides_make_and_name_the_clutter_set(tmp_path):
    import dataclasses

    from solo_scaca.data.layout import read_boxes

    cifar = solid_cifar(tmp_path / "cifar", per_class=2)
    profile = dataclasses.replace(clutter.PROFILES["clutter"]["tiny"], train_per_class=2,
                                  test_per_class=1, clutter_min_side=25, clutter_max_side=27)
    root = clutter.clutter_root(profile, tmp_path / "data" / "cifar10", cifar)
    assert root.name == "cifar10-clutter-2pc-1pc-25-27px"
    sides = {row["x1"] - row["x0"] for row in read_boxes(root)}
    assert sides and sides <= {25, 26, 27}
    default = dataclasses.replace(profile, clutter_min_side=14, clutter_max_side=22)
    assert bench_data.clutter_root(tmp_path, 2, 1, (14, 22)).name == "cifar10-clutter-2pc-1pc"
    assert clutter.clutter_root(default, tmp_path / "data" / "cifar10", cifar) != root


def test_the_centre_baseline_finds_centred_boxes_and_misses_corner_ones(tmp_path):
    from solo_scaca.data.layout import CSV_HEADER, write_csv

    centred = [("test", f"test/a/{i}.png", "a", 0, 8, 8, 24, 24) for i in range(3)]
    corner = [("test", "test/a/9.png", "a", 0, 0, 0, 10, 10), ("train", "x", "a", 0, 0, 0, 5, 5)]
    write_csv(tmp_path / "boxes.csv", CSV_HEADER, centred + corner)
    assert clutter.centre_baseline(tmp_path)["maxboxacc_centre"] == pytest.approx(75.0)


def test_clutter_images_scale_the_boxes_with_the_images(tmp_path):
    from PIL import Image

    from solo_scaca.data.layout import CSV_HEADER, write_csv

    (tmp_path / "test" / "a").mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(tmp_path / "test" / "a" / "0.png")
    write_csv(tmp_path / "boxes.csv", CSV_HEADER, [("test", "test/a/0.png", "a", 0, 8, 16, 40, 64)])
    images, boxes, labels = bench_data.clutter_images(tmp_path, 1, 32)
    assert images.shape == (1, 3, 32, 32) and labels.tolist() == [0]
    assert boxes.tolist() == [[4.0, 8.0, 20.0, 32.0]]


def _painted_views(paint, noise: float, n: int = 32, classes: int = 4, seed: int = 0):
    """Two views of ``n`` images: 8-channel 4 x 4 maps of Gaussian noise on which ``paint(cells,
    label, y, x)`` draws the object at the 2 x 2 cells from (y, x) (its box: 16 px of a 32 px
    image). Codes: the class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    fmaps, boxes = [], []
    for _ in range(2):
        fmap = noise * torch.randn(n, 8, 4, 4, generator=g)
        view_boxes = []
        for i in range(n):
            y, x = (int(v) for v in torch.randint(0, 3, (2,), generator=g))
            paint(fmap[i], int(labels[i]), y, x)
            view_boxes.append((8 * x, 8 * y, 8 * x + 16, 8 * y + 16))  # 8 px cells
        fmaps.append(fmap)
        boxes.append(torch.tensor(view_boxes, dtype=torch.float))
    codes = torch.nn.functional.one_hot(labels, classes).float()
    return incentive.Views(fmaps, [codes, codes], boxes, labels, 32)


def _stub_views(n: int = 32, classes: int = 4, seed: int = 0):
    """Maps where only the object's 2 x 2 cells carry the class (a one-hot direction); the
    rest is strong noise."""
    def paint(cells, c, y, x):
        cells[:, y:y + 2, x:x + 2] = 0
        cells[c, y:y + 2, x:x + 2] = 4.0

    return _painted_views(paint, 3.0, n, classes, seed)


def _shortcut_views():
    """Quiet maps where the object's 2 x 2 cells carry the class mixed with the next class, and
    one cell off the object carries the class alone and more strongly: the one-cell shortcut."""
    def paint(cells, c, y, x):
        cells[c, y:y + 2, x:x + 2] += 0.3
        cells[(c + 1) % 4, y:y + 2, x:x + 2] += 0.25
        sy, sx = (3, 3) if (y, x) == (0, 0) else (0, 0)  # outside the box
        cells[c, sy, sx] += 0.6

    return _painted_views(paint, 0.05)


class _StubHead:
    """A frozen 'SwAV': logits are the first ``classes`` channels, codes their argmax."""
    temperature = 0.1

    def head(self, feats):
        return feats[:, :4]

    def codes(self, logits):
        return torch.nn.functional.one_hot(logits.detach().argmax(1), 4).float()


def test_incentive_rows_find_the_object_where_only_the_object_predicts_the_code():
    rows = incentive.incentive_rows(_StubHead(), _stub_views(), ["self", "self_masked"],
                                    steps=60, lr=0.2, seed=0, log=lambda _: None)
    by = {r["objective"]: r for r in rows}
    assert float(by["self"]["loss_box"]) < float(by["self"]["loss_uniform"])
    # the placebo (the box mirrored through the centre) holds noise where the box holds the class
    assert float(by["self"]["object_gain_nats"]) > 0.1
    assert float(by["self"]["own_mask_in_box"]) > 1.5  # optimised masks gather on the object
    assert by["self"]["verdict"] == "passes"


def test_sized_masks_keep_the_box_s_spread_and_leave_a_one_cell_shortcut():
    """(d): the free optimum (c) is the one-cell shortcut off the object; masks held at the
    box's entropy cannot sit on one cell, and the best place of the object's size is the
    object."""
    views = _shortcut_views()
    partner, keep = torch.arange(32), torch.ones(32, dtype=torch.bool)
    floor = [mask_entropies(m)
             for m in incentive.reference_masks("self", views, partner, "box")]
    assert torch.allclose(floor[0], torch.full((32,), math.log(4)))  # four cells
    free = incentive.own_masks("self", views, partner, 150, 0.3, _StubHead(), keep)
    sized = incentive.own_masks("self", views, partner, 150, 0.3, _StubHead(), keep, floor)
    assert incentive.spatial_of("self", free, views, partner)[0] < 0.5
    assert incentive.spatial_of("self", sized, views, partner)[0] > 1.5
    assert (mask_entropies(sized[0]) > floor[0] - 0.1).all()
    row, = incentive.incentive_rows(_StubHead(), views, ["self"], steps=150, lr=0.3, seed=0,
                                    log=lambda _: None)
    assert float(row["own_mask_in_box"]) < 0.5 < 1.5 < float(row["sized_mask_in_box"])
    assert row["verdict"] == "no training run"  # (d) is reported, not part of the verdict


def test_mirrored_boxes_keep_size_and_distance_from_the_border():
    boxes = torch.tensor([[2.0, 4.0, 10.0, 20.0], [0.0, 0.0, 32.0, 32.0]])
    assert incentive.mirrored(boxes, 32).tolist() == [[22.0, 12.0, 30.0, 28.0],
                                                      [0.0, 0.0, 32.0, 32.0]]


def test_incentive_command_on_a_tiny_checkpoint(tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "swav" / "model.ckpt", "swav")
    root = generate_clutter(tmp_path / "clutter", solid_cifar(tmp_path / "cifar"), 2, 4)
    out = incentive.main(["--ckpt", str(ckpt), "--clutter", str(root), "--out",
                          str(tmp_path / "out"), "--profile", "tiny", "--images", "16",
                          "--batch", "16", "--steps", "3"])
    text = out.read_text()
    for name in ("self", "self_masked", "co", "complement", "fixed", "attend"):
        assert f"| {name} |" in text
    columns, rows = _csv(out.with_suffix(".csv"))
    assert {r["verdict"] for r in rows} <= {"passes", "no training run"}
    assert {r["partners"] for r in rows if r["objective"] == "co"} == {"prototype", "class"}
    for r in rows:  # (d) where masks are distributions; complement's are soft, fixed's fixed
        assert (r["sized_mask_in_box"] == "") == (r["objective"] in ("complement", "fixed"))


def test_paired_views_crop_the_second_view_from_the_other_set(tmp_path):
    """``--pair-with``: the second view of each image is a crop of the other set's canvas (here
    blank canvases, so every second view's map is the same); the first view is unchanged."""
    ckpt = make_tiny_checkpoint(tmp_path / "swav" / "model.ckpt", "swav")
    model, backbone, size, scale = incentive.load_swav(ckpt)
    rrc = json.loads((ckpt.parent / "args.json").read_text())["augmentations"][0]["rrc"]
    assert scale == (rrc["crop_min_scale"], rrc["crop_max_scale"])  # its training's crops
    frozen = incentive.FrozenSwAV(model, backbone)
    images = torch.rand(4, 3, size, size)
    boxes = torch.tensor([[4.0, 4.0, 20.0, 20.0]] * 4)
    labels = torch.arange(4)
    alone = incentive.make_views(frozen, images, boxes, labels, size, scale, seed=0)
    same = incentive.make_views(frozen, images, boxes, labels, size, scale, 0, (images, boxes))
    for a, b in zip(alone.fmaps, same.fmaps):
        assert torch.equal(a, b)
    blank = incentive.make_views(frozen, images, boxes, labels, size, scale, 0,
                                 (torch.zeros_like(images), boxes))
    assert torch.equal(blank.fmaps[0], alone.fmaps[0])
    second = blank.fmaps[1].flatten(1)
    assert torch.allclose(second, second[:1].expand_as(second), atol=1e-5)
    assert not torch.allclose(alone.fmaps[1], blank.fmaps[1])


def test_incentive_command_pairs_two_canvases_of_each_object(tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "swav" / "model.ckpt", "swav")
    cifar = solid_cifar(tmp_path / "cifar")
    root = generate_clutter(tmp_path / "clutter", cifar, 2, 4, seed=0)
    other = generate_clutter(tmp_path / "clutter-seed1", cifar, 2, 4, seed=1)
    argv = ["--ckpt", str(ckpt), "--clutter", str(root), "--out", str(tmp_path / "out"),
            "--profile", "tiny", "--images", "8", "--batch", "8", "--steps", "2",
            "--objectives", "self"]
    out = incentive.main([*argv, "--pair-with", str(other)])
    assert out.name == "incentive-paired.md"
    assert "`clutter-seed1` (another background" in out.read_text()
    _, rows = _csv(out.with_suffix(".csv"))
    assert [r["objective"] for r in rows] == ["self"]
    fewer = generate_clutter(tmp_path / "clutter-fewer", cifar, 1, 1, seed=1)
    with pytest.raises(ValueError, match="--pair-with .*objects differ"):
        incentive.main([*argv, "--pair-with", str(fewer)])  # 8 images: 2 per class of 4
    incentive.main([*argv, "--pair-with", str(fewer), "--images", "4"])  # enough for 4


def test_pending_lists_what_is_left_with_each_arm_s_time(tmp_path, capsys):
    """``--pending``: the runs without a finished file (an unfinished extra evaluation counts),
    each estimated from its arm's finished runs for the epochs it has left (an interrupted run
    resumes after its checkpoints); nothing is run or written."""
    runs_dir = tmp_path / "cpu" / clutter.RUNS_DIR
    runs_dir.mkdir(parents=True)
    finished = {"knn20_top1": 1.0, "clean_knn20_top1": 1.0}
    for arm, seed, extra in (("swav", 0, {**finished, "wall_s": 600.0}),
                             ("swav", 1, {**finished, "wall_s": 1200.0}),
                             ("swav_lewel", 0, {"knn20_top1": 1.0, "wall_s": 60.0})):
        clutter.run_file_of(runs_dir, arm, seed).write_text(
            json.dumps({"arm": arm, "seed": seed, **extra}))
    # an interrupted run of swav seed 2: 12 of the profile's 16 epochs left
    work_dir = tmp_path / "work"
    ckpt_dir = runs.run_dir(work_dir / "swav", "cpu", "swav", 2) / "swav" / "x"
    ckpt_dir.mkdir(parents=True)
    (ckpt_dir / "bench-swav-seed2-x-ep=3.ckpt").touch()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    bench_main(["clutter", "--profile", "cpu", "--out", str(tmp_path), "--pending",
                "--arms", "swav", "swav_lewel", "--seeds", "3", "--work-dir", str(work_dir)])
    lines = capsys.readouterr().out.splitlines()
    assert "swav seed 2: ~11 min (mean of 2 finished; 4/16 epochs checkpointed)" in lines
    assert "swav_lewel seed 0: no finished run of this arm to estimate from" in lines
    assert lines[-1] == "4 runs pending, ~0.2 h plus 3 without an estimate"
    assert not any(line.startswith("swav seed 0") or line.startswith("swav seed 1")
                   for line in lines)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no table, no report


def test_within_starts_only_the_runs_whose_estimate_fits(tmp_path, monkeypatch, capsys):
    """``--within``: a run starts only where its arm's mean wall time (an arm never run: 1.25 x
    the slowest arm's; random init, only evaluated, does not count), for the epochs the run has
    left, fits in the time left."""
    profile = profiles.PROFILES["clutter"]["cpu"]
    runs_dir = tmp_path / "cpu" / clutter.RUNS_DIR
    runs_dir.mkdir(parents=True)
    for arm, wall in (("swav", 1800.0), ("swav_lewel", 3000.0), (RANDOM_INIT, 9000.0)):
        clutter.run_file_of(runs_dir, arm, 0).write_text(json.dumps(
            {"arm": arm, "seed": 0, "knn20_top1": 1.0, "clean_knn20_top1": 1.0, "wall_s": wall,
             "base_settings": profiles.settings_of(profile)}))
    assert clutter.estimated_s(clutter.finished_walls(runs_dir), "byol") == 1.25 * 3000.0
    assert clutter.estimated_s({}, "swav") is None
    started = []
    monkeypatch.setattr(clutter, "prepare", lambda *args: {})
    monkeypatch.setattr(clutter, "run_arm", lambda name, prof, arm, seed, *args: started.append(
        (arm, seed)) or dict.fromkeys(("knn20_top1", "linear_top1", "clean_knn20_top1",
                                        "maxboxacc"), 0.0))
    # swav_lewel seed 2 was cut after 12 of its 16 epochs: it resumes for a quarter of the time
    ckpt_dir = runs.run_dir(tmp_path / "swav_lewel", "cpu", "swav_lewel", 2) / "swav_lewel"
    ckpt_dir.mkdir(parents=True)
    (ckpt_dir / "bench-swav_lewel-seed2-x-ep=11.ckpt").touch()
    clutter.run_suite("cpu", profile, tmp_path, tmp_path, tmp_path, tmp_path, [],
                      only=[("swav_lewel", 1), ("swav", 1), ("byol", 0), ("swav_lewel", 2)],
                      tables=False, within_min=45)
    assert started == [("swav", 1), ("swav_lewel", 2)]
    out = capsys.readouterr().out
    assert "1/4 swav_lewel seed 1: not started, its estimate (~50 min) exceeds" in out
    assert "3/4 byol seed 0: not started, its estimate (~62 min)" in out
    with pytest.raises(SystemExit):
        bench_main(["clutter", "--profile", "cpu", "--out", str(tmp_path), "--within", "60",
                    "--jobs", "2"])
    assert "--within takes minutes > 0 and runs one at a time" in capsys.readouterr().err
