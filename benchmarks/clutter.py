"""Can looking somewhere pay? SwAV, the cross-attention, its extra-loss control and a published
spatial method (LEWEL, the positive control) on ``cifar10-clutter``, with seeds.

    python3 -m benchmarks clutter --profile cpu     # hours on 2 CPU cores: run in background
    python3 -m benchmarks clutter --profile tiny    # seconds: what CI runs
    python3 -m benchmarks clutter --profile cpu --arms ca_objective=co \
        ca_objective=co,ca_mask=uniform   # an objective beside its uniform-mask control

Every arm is pretrained through the plugin's pretraining command on the clutter training split
(``solo-scaca-clutter-data``: CIFAR-10 objects on 32 px mosaics of other classes; the cpu
profile's objects are 18-26 px, the command's default 14-22),
then evaluated: k-NN 20/200 and the host's linear model on the clutter test split and on clean
CIFAR-10 (memory bank and linear training on clean training images), CAM MaxBoxAcc on the
clutter test split (a linear head on clutter training features), and, for arms with a spatial
mask or map, mask-in-box and border share on clutter test images (``swav_scaca``: its masks with
the partners its own pairing chooses in batches of the profile's size; ``*_lewel``: each
alignment map). Result files resume as in ``controls`` (one per arm and seed; a run interrupted
during its extra evaluation gets only that redone). Writes ``clutter.md/.csv`` (mean +- std over
seeds, t-tests against the base method and against the arm's own ``ca_mask=uniform`` control)
and a mask grid per spatial arm (``clutter-masks-<arm>-seed<S>.png``); ``--pending`` says what
is left and how long it took so far, ``--within MINUTES`` starts only the runs that fit in that
time (by the same estimates). A run cut when its machine goes away resumes from its last epoch
checkpoint (under ``--work-dir``) where that folder survives; both count only its epochs left.
The default arms are the base comparison; ``ca_objective=O`` and ``ca_objective=O,ca_mask=uniform``
(one seed unless ``--seeds``) train the other CA objectives that pass ``benchmarks incentive``.
"""

import json
import time
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks import data, profiles, runs, stats
from benchmarks.campaign import (
    RANDOM_INIT,
    campaign_parser,
    check_settings,
    config_of,
    method_overrides,
    parse_campaign,
    run_file_of,
    run_parallel,
    run_random_init,
    slug,
)
from benchmarks.common import metadata, write_table
from benchmarks.control_variants import CURVES

from benchmarks.profiles import PROFILES

RUNS_DIR = "clutter_runs"
# LEWEL's logged map metrics and loss, per epoch in the run file (do the maps leave uniform?)
LEWEL_CURVES = ("train_lewel_map_entropy", "train_lewel_map_peak", "train_lewel_loss")
# arm -> (method, host method whose config it starts from, overrides, seeds by default)
BASE_ARMS: "OrderedDict[str, Tuple[str, str, Tuple[str, ...], int]]" = OrderedDict([
    ("swav", ("swav", "swav", (), 3)),
    ("swav_lewel", ("swav_lewel", "swav", (), 3)),
    ("swav_scaca (default)", ("swav_scaca", "swav", (), 3)),
    ("ca_mask=uniform", ("swav_scaca", "swav", ("method_kwargs.ca_mask=uniform",), 3)),
    ("byol", ("byol", "byol", (), 1)),
    ("byol_lewel", ("byol_lewel", "byol", (), 1)),
])
# BYOL's arms default to one seed: at the cpu profile's budget (with 20% crops) BYOL did not learn
# by the campaign's own bar (clutter k-NN-20 LEARNS_KNN20 points over random init); the table
# says by how much it misses, or that it learns
ONE_SEED_ARMS = tuple(arm for arm, (*_, seeds) in BASE_ARMS.items() if seeds == 1)
LEARNS_KNN20 = 5.0
# every other CA objective beside its own uniform-mask control (one seed unless --seeds):
# run the ones the incentive check passes with --arms
OBJECTIVES = ("self_masked", "co", "complement", "fixed", "attend")
OBJECTIVE_ARMS = OrderedDict(
    (f"ca_objective={o}{suffix}",
     ("swav_scaca", "swav", (f"method_kwargs.ca_objective={o}", *extra), 1))
    for o in OBJECTIVES for suffix, extra in (("", ()), (",ca_mask=uniform",
                                                         ("method_kwargs.ca_mask=uniform",))))
ARMS = OrderedDict([*BASE_ARMS.items(), *OBJECTIVE_ARMS.items()])
BASE_OF = {"swav_lewel": "swav", "swav_scaca (default)": "swav", "ca_mask=uniform": "swav",
           "byol_lewel": "byol", **{arm: "swav" for arm in OBJECTIVE_ARMS}}


def uniform_control(arm: str) -> Optional[str]:
    """The arm's own ``ca_mask=uniform`` control (same objective, uniform masks)."""
    if arm == "swav_scaca (default)":
        return "ca_mask=uniform"
    if arm in OBJECTIVE_ARMS and not arm.endswith("ca_mask=uniform"):
        return f"{arm},ca_mask=uniform"
    return None


SPATIAL_IMAGES = 512  # clutter test images the masks and maps are measured on


def clutter_root(profile: profiles.Profile, data_root: Path, cifar_dir: Path) -> Path:
    """The profile's clutter set, generated once from the CIFAR-10 tarballs or folders."""
    from solo_scaca.data.clutter import generate_clutter

    sides = (profile.clutter_min_side, profile.clutter_max_side)
    root = data.clutter_root(data_root, profile.train_per_class, profile.test_per_class, sides)
    return generate_clutter(root, cifar_dir, profile.train_per_class, profile.test_per_class,
                            min_side=sides[0], max_side=sides[1])


def mask_scores(masks: "torch.Tensor", boxes: "torch.Tensor") -> Dict[str, float]:
    """Mask-in-box, border share and entropy of masks (N x H x W) or of LEWEL's alignment maps
    (N x M x H x W: mean over the maps, and ``mask_in_box_best_map``, the map most on the
    object); and ``mask_in_box_prior``, the mask-in-box of the mean mask over the N images: what
    a fixed spatial bias (away from the border, where the objects' boxes reach less often)
    scores without looking at the image. ``boxes``: the first N of the images' boxes."""
    import torch

    from solo_scaca.addon.mechanism_metrics import mask_entropy
    from solo_scaca.evaluation.box_metrics import border_share, mask_in_box

    maps = masks.cpu().float()
    maps = maps[:, None] if maps.dim() == 3 else maps  # N x M x H x W
    boxes = boxes[:len(maps)]
    per_map = torch.stack([mask_in_box(maps[:, k], boxes, 32) for k in range(maps.size(1))])
    prior = [mask_in_box(maps[:, k].mean(0).expand_as(maps[:, k]), boxes, 32).mean()
             for k in range(maps.size(1))]
    flat = maps.flatten(0, 1)
    scores = {"mask_in_box": float(per_map.mean()),
              "mask_in_box_prior": float(sum(prior) / len(prior)),
              "border_share": float(border_share(flat).mean()),
              "mask_entropy": float(mask_entropy(flat))}
    if masks.dim() == 4:
        scores["mask_in_box_best_map"] = float(per_map.mean(dim=1).max())
    return scores


def spatial_metrics(ckpt: str, method: str, root: Path, batch_size: int) -> Dict[str, float]:
    """``mask_scores`` of a ``swav_scaca`` checkpoint's masks (with the partners its own pairing
    picks in batches of ``batch_size``) or of a ``*_lewel`` checkpoint's alignment maps, on the
    first ``SPATIAL_IMAGES`` clutter test images (classes interleaved)."""
    import torch
    from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from solo_scaca.evaluation.mask_view import batch_masks, load_method

    images, boxes, _ = data.clutter_images(root, SPATIAL_IMAGES, 32)
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_DEFAULT_STD)[:, None, None]
    images = (images - mean) / std
    model = load_method(ckpt)
    if method.endswith("_lewel"):
        from solo_scaca.addon.lewel import lewel_maps

        return mask_scores(torch.cat([lewel_maps(model, images[i:i + batch_size])
                                      for i in range(0, len(images), batch_size)]), boxes)
    return mask_scores(torch.cat([batch_masks(model, images[i:i + batch_size]).masks
                                  for i in range(0, len(images) - 1, batch_size)]), boxes)


def localization(ckpt: str, root: Path, profile: profiles.Profile) -> Dict[str, float]:
    """CAM MaxBoxAcc (and its threshold) on the clutter test split."""
    from benchmarks.cam_eval import evaluate, normalization
    from solo_scaca.host.backbone_io import load_backbone, read_pretrain_args
    from solo_scaca.host.checkpoints import load_checkpoint

    checkpoint = load_checkpoint(ckpt)
    args = read_pretrain_args(ckpt, checkpoint=checkpoint)
    backbone = load_backbone(ckpt, checkpoint=checkpoint)
    mean, std = normalization(args)
    result = evaluate(backbone, args["backbone"]["name"], root, mean, std, head_epochs=30,
                          head_lr=0.1, batch_size=profile.eval_batch_size,
                          num_workers=min(profile.num_workers, 2), grid=[], val_split="test")
    return {"maxboxacc": result["maxboxacc"], "maxboxacc_threshold": result["threshold"]}


def centre_baseline(root: Path) -> Dict[str, float]:
    """MaxBoxAcc of the centre Gaussian (no model) on the clutter test boxes: what a map that
    ignores the image scores (objects are off-centre here, so it is weak)."""
    import numpy as np

    from solo_scaca.data.clutter import CANVAS_SIZE
    from solo_scaca.data.layout import read_boxes
    from solo_scaca.evaluation.cam import center_gaussian_maps, max_box_acc

    boxes = np.array([[r[k] for k in ("x0", "y0", "x1", "y1")] for r in read_boxes(root)
                      if r["split"] == "test"])
    maps = center_gaussian_maps(len(boxes), CANVAS_SIZE, CANVAS_SIZE)
    acc, threshold = max_box_acc(maps, boxes)
    return {"maxboxacc_centre": 100 * acc, "maxboxacc_centre_threshold": threshold}


def extra_evaluation(result: Dict[str, Any], profile: profiles.Profile, root: Path,
                     clean: Tuple[Path, Path], method: str) -> Dict[str, Any]:
    """The run's clean CIFAR-10 accuracies, MaxBoxAcc and spatial metrics."""
    ckpt = result["checkpoint"]
    clean_acc = runs.evaluate(ckpt, profile, *clean, result["seed"])
    out = {f"clean_{k}": v for k, v in clean_acc.items()
           if k in ("knn20_top1", "knn200_top1", "linear_top1")}
    out.update(localization(ckpt, root, profile))
    if method.endswith("_lewel") or (method == "swav_scaca" and "ca_weight=0" not in
                                     " ".join(result.get("overrides", []))):
        out.update(spatial_metrics(ckpt, method, root, profile.batch_size))
    return out


def plan(profile: profiles.Profile, arms: Sequence[str],
         seeds: Optional[int] = None) -> List[Tuple[str, int]]:
    """(arm, seed) pairs, seed by seed, so that an interrupted campaign has balanced seeds."""
    return [(arm, seed) for i, seed in enumerate(profile.seeds) for arm in arms
            if i < (ARMS[arm][3] if seeds is None else seeds)]


def lacks_prior(result: Dict[str, Any]) -> bool:
    """A spatial run measured before ``mask_in_box_prior`` was, whose checkpoint is still here."""
    return ("mask_in_box" in result and "mask_in_box_prior" not in result
            and Path(result.get("checkpoint", "")).is_file())


def pending_pairs(runs_dir: Path, pairs: Sequence[Tuple[str, int]]) -> List[Tuple[str, int]]:
    """The pairs without a finished run file (one lacking the extra evaluation, or the mean
    mask's mask-in-box where its checkpoint is here, counts as pending: only that is redone)."""
    def finished(path: Path) -> bool:
        result = json.loads(path.read_text()) if path.exists() else {}
        return "clean_knn20_top1" in result and not lacks_prior(result)

    return [(a, s) for a, s in pairs if not finished(run_file_of(runs_dir, a, s))]


def finished_walls(runs_dir: Path) -> Dict[str, List[float]]:
    """The wall seconds of each arm's finished runs (on their own machines; random init, only
    evaluated, is none)."""
    walls: Dict[str, List[float]] = {}
    for path in sorted(runs_dir.glob("*.json")) if runs_dir.is_dir() else []:
        run = json.loads(path.read_text())
        if "clean_knn20_top1" in run and "wall_s" in run and run.get("arm") != RANDOM_INIT:
            walls.setdefault(run["arm"], []).append(run["wall_s"])
    return walls


def estimated_s(walls: Dict[str, List[float]], arm: str) -> Optional[float]:
    """Seconds one more run of ``arm`` may take, for ``--within``: the mean of its finished
    runs; an arm never run, 1.25 x the slowest arm's mean (LEWEL's epochs take ~1.15 x
    SwAV's); None when nothing has run."""
    means = {a: sum(w) / len(w) for a, w in walls.items() if w}
    if arm in means:
        return means[arm]
    return 1.25 * max(means.values()) if means else None


def epochs_done(work_dir: Path, profile_name: str, arm: str, seed: int) -> int:
    """Epochs of (arm, seed) checkpointed under the work folder: an interrupted run resumes
    after them."""
    return runs.epochs_done(runs.run_dir(work_dir / slug(arm), profile_name, ARMS[arm][0], seed))


def pending_lines(runs_dir: Path, pairs: Sequence[Tuple[str, int]],
                  done: Optional[Dict[Tuple[str, int], int]] = None, epochs: int = 1
                  ) -> List[str]:
    """What is left of a campaign, one line per (arm, seed), with the mean wall time of its
    arm's finished runs (on their own machines: an estimate) scaled to the epochs left of
    ``epochs`` (``done``: epochs checkpointed per pair), and the total."""
    walls = finished_walls(runs_dir)
    lines, total, unknown = [], 0.0, 0
    for arm, seed in pending_pairs(runs_dir, pairs):
        finished = (done or {}).get((arm, seed), 0)
        resumes = f"; {finished}/{epochs} epochs checkpointed" if finished else ""
        if walls.get(arm):
            minutes = sum(walls[arm]) / len(walls[arm]) / 60 * max(1 - finished / epochs, 0)
            total += minutes
            lines.append(f"{arm} seed {seed}: ~{minutes:.0f} min (mean of {len(walls[arm])} "
                         f"finished{resumes})")
        else:
            unknown += 1
            lines.append(f"{arm} seed {seed}: no finished run of this arm to estimate from"
                         + (f" ({resumes[2:]})" if resumes else ""))
    lines.append(f"{len(lines)} runs pending, ~{total / 60:.1f} h"
                 + (f" plus {unknown} without an estimate" if unknown else "")
                 if lines else "nothing pending")
    return lines


def run_arm(profile_name: str, profile: profiles.Profile, arm: str, seed: int,
            paths: Dict[str, Path], work_dir: Path, runs_dir: Path) -> Dict[str, Any]:
    """Pretrains and evaluates one (arm, seed), or finishes the extra evaluation of a run whose
    file lacks it."""
    method, host, overrides, _ = ARMS[arm]
    path = run_file_of(runs_dir, arm, seed)
    settings = profiles.settings_of(profile)
    if path.exists():
        result = json.loads(path.read_text())
    else:
        base = method_overrides(profile, host)
        result = runs.run_one(
            profile_name, profile, method, seed, paths["train"], paths["test"],
            work_dir / slug(arm), path,
            {"benchmark": "clutter", "arm": arm, "overrides": list(overrides),
             "base_settings": settings},
            resume=True, curves=(CURVES if method == "swav_scaca" else
                                 LEWEL_CURVES if method.endswith("_lewel") else ()),
            config=config_of(host), base_overrides=[*base, *overrides])
    if "clean_knn20_top1" not in result:
        result.update(extra_evaluation(result, profile, paths["root"],
                                       (paths["clean_train"], paths["clean_test"]), method))
        runs.write_run_file(path, result)
    elif lacks_prior(result):
        result.update(spatial_metrics(result["checkpoint"], method, paths["root"],
                                      profile.batch_size))
        runs.write_run_file(path, result)
    return result


def prepare(profile: profiles.Profile, data_root: Path, cifar_dir: Path) -> Dict[str, Path]:
    """The clutter set and the clean CIFAR-10 folders of a profile."""
    clean_train, clean_test = data.profile_data(profile, data_root, cifar_dir)
    root = clutter_root(profile, data_root, cifar_dir)
    return {"root": root, "train": root / "train", "test": root / "test",
            "clean_train": clean_train, "clean_test": clean_test}


def run_suite(profile_name: str, profile: profiles.Profile, out: Path, data_root: Path,
              cifar_dir: Path, work_dir: Path, arms: Sequence[str], seeds: Optional[int] = None,
              only: Sequence[Tuple[str, int]] = (), jobs: int = 1,
              child_argv: Sequence[str] = (), tables: bool = True,
              within_min: Optional[float] = None) -> Optional[Path]:
    """Runs the missing (arm, seed) pairs (``only``: just these), then writes the table;
    ``within_min``: starts a run only where its estimate (``estimated_s``) fits in the minutes
    left, so that no run is cut when its machine goes away (the others stay pending)."""
    deadline = None if within_min is None else time.time() + 60 * within_min
    runs_dir = out / profile_name / RUNS_DIR
    settings = profiles.settings_of(profile)
    check_settings(runs_dir, settings, profile_name, "pass another --out")
    pending = pending_pairs(runs_dir, list(only) or plan(profile, arms, seeds))
    random_file = run_file_of(runs_dir, RANDOM_INIT, profile.seeds[0])
    paths = prepare(profile, data_root, cifar_dir) if pending or not random_file.exists() else {}
    if not random_file.exists() and not only:
        result = run_random_init(profile_name, profile, profile.seeds[0], paths["train"],
                                 paths["test"], work_dir / "random-init", random_file)
        result.update(arm=RANDOM_INIT, base_settings=settings, benchmark="clutter")
        result.update(extra_evaluation(result, profile, paths["root"],
                                       (paths["clean_train"], paths["clean_test"]), "none"))
        runs.write_run_file(random_file, result)
    if random_file.exists() and not only:
        result = json.loads(random_file.read_text())
        if "maxboxacc_centre" not in result:  # run files written before the baseline was
            result.update(centre_baseline(paths.get("root") or clutter_root(
                profile, data_root, cifar_dir)))
            runs.write_run_file(random_file, result)
    if jobs > 1 and len(pending) > 1:
        run_parallel(pending, jobs, list(child_argv), work_dir / "logs",
                     module="benchmarks.clutter")
        pending = []
    for i, (arm, seed) in enumerate(pending, 1):
        need = estimated_s(finished_walls(runs_dir), arm) if deadline is not None else None
        if need is not None:  # a run resumed after its checkpointed epochs
            need *= max(1 - epochs_done(work_dir, profile_name, arm, seed) / profile.epochs, 0)
        if need is not None and time.time() + need > deadline:
            print(f"[clutter] {i}/{len(pending)} {arm} seed {seed}: not started, its estimate "
                  f"(~{need / 60:.0f} min) exceeds the {(deadline - time.time()) / 60:.0f} min "
                  "left of --within", flush=True)
            continue
        print(f"[clutter] {i}/{len(pending)} {arm} seed {seed}: start", flush=True)
        r = run_arm(profile_name, profile, arm, seed, paths, work_dir, runs_dir)
        print(f"[clutter] {arm} seed {seed}: clutter kNN-20 {r['knn20_top1']:.2f}%, linear "
              f"{r['linear_top1']:.2f}%; clean kNN-20 {r['clean_knn20_top1']:.2f}%; MaxBoxAcc "
              f"{r['maxboxacc']:.1f}", flush=True)
    if not tables:
        return None
    draw_mask_grids(out / profile_name)
    return write_tables(out / profile_name, profile)


def draw_mask_grids(profile_dir: Path, rows: int = 6) -> List[Path]:
    """``clutter-masks-<arm>-seed<S>.png`` once per arm whose masks or maps can leave uniform
    (swav_scaca without ``ca_mask=uniform``, LEWEL): its lowest seed whose checkpoint is on this
    machine, on 64 clutter test images (``runs.draw_masks``; the boxes give mask-in-box)."""
    runs_dir = profile_dir / RUNS_DIR
    finished = sorted((r for r in map(json.loads, (p.read_text() for p in
                                                   runs_dir.glob("*.json")))
                       if "clean_knn20_top1" in r), key=lambda r: r["seed"])
    drawn = []
    for arm, (method, _, overrides, _) in ARMS.items():
        spatial = method.endswith("_lewel") or (
            method == "swav_scaca" and "method_kwargs.ca_mask=uniform" not in overrides)
        own = [r for r in finished if r.get("arm") == arm]
        if not spatial or not own or list(profile_dir.glob(f"clutter-masks-{slug(arm)}-seed*")):
            continue
        run = next((r for r in own if Path(r["checkpoint"]).exists()), None)
        if run is None:
            print(f"[clutter] masks of {arm}: no checkpoint of its runs is on this machine, not "
                  "drawn", flush=True)
            continue
        out = profile_dir / f"clutter-masks-{slug(arm)}-seed{run['seed']}.png"
        runs.draw_masks(run, run_file_of(runs_dir, arm, run["seed"]), out, "clutter", rows)
        drawn.append(out)
    return drawn


METRICS = (("knn20_top1", "kNN-20"), ("knn200_top1", "kNN-200"), ("linear_top1", "linear"),
           ("clean_knn20_top1", "clean kNN-20"), ("clean_linear_top1", "clean linear"),
           ("maxboxacc", "MaxBoxAcc"))
# the metrics each arm is t-tested on against its base and its uniform control
TESTED = (("knn20_top1", "kNN-20"), ("linear_top1", "linear"), ("maxboxacc", "MaxBoxAcc"),
          ("clean_knn20_top1", "clean kNN-20"))
SPATIAL = (("mask_in_box", "mask-in-box"), ("mask_in_box_prior", "mean mask in box"),
           ("mask_in_box_best_map", "best map in box"),
           ("border_share", "border share"), ("mask_entropy", "entropy"))


def one_seed_note(by_arm: Dict[str, List[Dict[str, Any]]]) -> str:
    """Why BYOL's arms have one seed, with BYOL's gains over random init from the run files;
    a BYOL that does learn by the campaign's bar gets a note asking for its other seeds."""
    byol, init = by_arm.get("byol", []), by_arm.get(RANDOM_INIT, [])
    if not byol or not init or any(len(by_arm.get(a, [])) > 1 for a in ONE_SEED_ARMS):
        return ""
    gain = {k: byol[0][k] - init[0][k] for k in ("knn20_top1", "clean_knn20_top1")}
    if gain["knn20_top1"] >= LEARNS_KNN20:
        return (f" `byol` learns here (clutter kNN-20 {gain['knn20_top1']:+.1f} over random "
                "init): run `--seeds 3` for BYOL's arms too.")
    arms = " and ".join(f"`{a}`" for a in ONE_SEED_ARMS)
    return (f" {arms} have one seed: BYOL does not learn at this budget (clutter "
            f"kNN-20 {gain['knn20_top1']:+.1f} over random init where the campaign asks "
            f"+{LEARNS_KNN20:.0f}, clean kNN-20 {gain['clean_knn20_top1']:+.1f}); `--seeds 3` "
            "adds the others.")


def write_tables(profile_dir: Path, profile: profiles.Profile) -> Path:
    """``clutter.md/.csv``: per arm, mean +- std over seeds of every metric, the seed-noise
    t-test (k-NN-20, linear, MaxBoxAcc on the clutter set; k-NN-20 on clean CIFAR-10, what an
    objective may not lose) against its base method and against the uniform control."""
    loaded = [json.loads(p.read_text()) for p in sorted((profile_dir / RUNS_DIR).glob("*.json"))]
    by_arm: Dict[str, List[Dict[str, Any]]] = {}
    for r in loaded:
        if "clean_knn20_top1" in r:
            by_arm.setdefault(r["arm"], []).append(r)
    rows = [{"arm": "centre baseline (no model)", "seeds": "-",
             "MaxBoxAcc": f"{r['maxboxacc_centre']:.2f}"}
            for r in by_arm.get(RANDOM_INIT, [])[:1] if "maxboxacc_centre" in r]
    for arm in [RANDOM_INIT, *ARMS]:
        group = by_arm.get(arm, [])
        if not group:
            continue
        row = {"arm": arm, "seeds": ",".join(str(r["seed"]) for r in group)}
        for key, label in METRICS + SPATIAL:
            values = [r[key] for r in group if key in r]
            if values:
                mean, std = stats.mean_std(values)
                row[label] = f"{mean:.2f}" + (f" +- {std:.2f}" if std is not None else "")
        for ref_name, ref in (("vs base", BASE_OF.get(arm)),
                              ("vs uniform", uniform_control(arm))):
            if ref and ref in by_arm:
                tests = []
                for key, label in TESTED:
                    t = stats.pooled_ttest([r[key] for r in group], [r[key] for r in by_arm[ref]])
                    if t["diff"] != "n/a":
                        verdict = str(t["exceeds_noise"])
                        mark = {"yes": " *", "no": ""}.get(verdict, f" ({verdict})")
                        tests.append(f"{label} {t['diff']:+.2f}{mark}")
                row[ref_name] = "; ".join(tests)
        rows.append(row)
    columns = ["arm", "seeds", *(label for _, label in METRICS + SPATIAL), "vs base",
               "vs uniform"]
    notes = (profile.why + "\n\nAccuracies in %, mean +- std over seeds. `vs base`: difference "
             "of the means against the arm's base method (swav or byol), `vs uniform`: against "
             "`ca_mask=uniform`; `*` where it exceeds the seed noise (two-sample t-test at 5%, "
             "pooled std, `benchmarks/stats.py`). mask-in-box: the mask's mass in the object's "
             "box over the box's share (1 = uniform, > 1 on the object); mean mask in box: the same "
             "for the arm's mean mask over the test images, a fixed bias that ignores the image "
             "(mask-in-box above it: the masks follow the object); border share: mass on "
             "the outer ring of map cells over its share (1 = uniform). LEWEL: mean over its "
             "alignment maps, and the map most on the object.")
    notes += one_seed_note(by_arm)
    if loaded and "base_settings" in loaded[0]:
        changed = profiles.changes(profiles.profile_from_settings(loaded[0]["base_settings"], ""),
                                   PROFILES["clutter"].get(profile_dir.name, profile))
        if changed:
            notes += (" Settings changed from the profile (`--set`): "
                      + ", ".join(f"`{c}`" for c in changed) + ".")
    machines = Counter(r.get("machine", "unknown") for group in by_arm.values() for r in group)
    notes += " Runs trained on: " + "; ".join(f"{m} ({n})" for m, n in machines.items()) + "."
    return write_table("clutter", "Clutter: can looking somewhere pay?", rows, columns,
                       metadata(), notes, profile_dir)


def rebuild_tables(profile_dir: Path) -> Optional[Path]:
    """Rewrites ``clutter.md/.csv`` from the run files of a profile folder (if it has any)."""
    if (profile_dir / RUNS_DIR).is_dir() and profile_dir.name in PROFILES["clutter"]:
        return write_tables(profile_dir, PROFILES["clutter"][profile_dir.name])
    return None


def main(argv: Optional[Sequence[str]] = None) -> Optional[Path]:
    """Command-line entry point (also ``python3 -m benchmarks clutter``)."""
    parser = campaign_parser("clutter", __doc__, "clutter")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(BASE_ARMS),
                        metavar="ARM", help=f"one or more of {list(ARMS)} (default: "
                        f"{list(BASE_ARMS)})")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per arm (default 3)")
    parser.add_argument("--pending", action="store_true",
                        help="print the runs still to do and an estimate of their time; run "
                             "nothing")
    parser.add_argument("--within", type=float, default=None, metavar="MINUTES",
                        help="start a pending run only where its estimate (its arm's finished "
                             "runs' mean wall time, for the epochs it has left) fits in the "
                             "minutes left; the others stay pending (one run at a time)")
    request = parse_campaign(parser, argv, "clutter", "clutter", list(ARMS), "ARM")
    if request.args.within is not None and (request.args.within <= 0 or request.args.jobs > 1):
        parser.error("--within takes minutes > 0 and runs one at a time (no --jobs)")
    if request.args.pending:
        name, profile, out, _, _, work_dir = request.where()
        pairs = request.only or plan(profile, request.args.arms, request.args.seeds)
        done = {(arm, seed): epochs_done(work_dir, name, arm, seed) for arm, seed in pairs}
        print("\n".join(pending_lines(out / name / RUNS_DIR, pairs, done, profile.epochs)))
        return None
    return run_suite(*request.where(), request.args.arms, request.args.seeds,
                     only=request.only, within_min=request.args.within, **request.how())


if __name__ == "__main__":
    main()
