"""Is the cross-attention worth anything? swav_scaca against the host's swav and against the
extra-loss control ``ca_mask=uniform`` (docs/method.md section 6), with seeds, on a profile whose
spatial map is 8x8, plus design variants; the mechanism metrics of every run per epoch.

    python3 -m benchmarks controls --profile cpu    # hours on 2 CPU cores: runs in background
    python3 -m benchmarks controls --profile tiny   # seconds: what CI runs

Every run is pretrained through the plugin's pretraining command and evaluated exactly as the
accuracy benchmark does (``benchmarks/accuracy.py``: k-NN 20/200 and the host's linear model on
the test split). It resumes inside a run (the host's AutoResumer continues an interrupted
pretraining from its last epoch checkpoint under ``--work-dir``) and across runs (a run whose
result file ``<out>/<profile>/control_runs/<variant>-seed<seed>.json`` exists is skipped). Runs
go seed by seed, so that an interrupted campaign has balanced seeds. Writes ``controls.md/.csv``
(variants, mean +- std, t-tests against ``swav`` and ``ca_mask=uniform``, last-epoch mechanism
metrics), ``controls_runs.md/.csv`` and ``controls.png`` (mask entropy and partner sensitivity
per epoch).
"""

import argparse
import dataclasses
import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks import accuracy
from benchmarks.ablations import run_random_init, slug
from benchmarks.common import RESULTS, write_table

RUNS_DIR = "control_runs"
RANDOM_INIT = "random init"
SWAV, DEFAULT, UNIFORM = "swav", "swav_scaca (default)", "ca_mask=uniform"
# variant -> (method, method_kwargs overrides, seeds it gets by default: the first N of the
# profile's). The mechanism metrics below exist only for swav_scaca variants.
VARIANTS: "OrderedDict[str, Tuple[str, Tuple[str, ...], int]]" = OrderedDict([
    (SWAV, ("swav", (), 3)),
    (DEFAULT, ("swav_scaca", (), 3)),
    (UNIFORM, ("swav_scaca", ("method_kwargs.ca_mask=uniform",), 3)),
    ("ca_pairing=random", ("swav_scaca", ("method_kwargs.ca_pairing=random",), 1)),
    ("ca_keys=features", ("swav_scaca", ("method_kwargs.ca_keys=features",), 1)),
    # candidates for a mask that attends (benchmarks/attention.py): one seed each at first
    ("ca_response=mean", ("swav_scaca", ("method_kwargs.ca_response=mean",), 1)),
    ("ca_response=contrast", ("swav_scaca", ("method_kwargs.ca_response=contrast",), 1)),
    ("ca_mask_temperature=0.02", ("swav_scaca", ("method_kwargs.ca_mask_temperature=0.02",), 1)),
    ("ca_keys=features, ca_response=mean", (
        "swav_scaca", ("method_kwargs.ca_keys=features", "method_kwargs.ca_response=mean"), 1)),
])
MECHANISM = (
    ("train_ca_mask_entropy", "entropy"),
    ("train_ca_mask_peak", "peak"),
    ("train_ca_mask_to_uniform", "to_uniform"),
    ("train_ca_partner_sensitivity", "sensitivity"),
    ("train_ca_partner_same_prototype", "same_proto"),
    ("train_ca_partner_same_class", "same_class"),
)
CURVES = tuple(key for key, _ in MECHANISM) + ("train_ca_loss",)
SPATIAL_AUGMENTATION = (
    "augmentations.0.color_jitter.brightness=0.4", "augmentations.0.color_jitter.contrast=0.4",
    "augmentations.0.color_jitter.saturation=0.4", "augmentations.0.color_jitter.hue=0.1",
    "augmentations.0.gaussian_blur.prob=0.0", "augmentations.0.rrc.crop_min_scale=0.2",
)

PROFILES: Dict[str, accuracy.Profile] = {
    # the CPU probe of HOST.md (host's main_pretrain.py, swav, 8 epochs: kNN-20 37.4% against
    # 29.9% at random init, on an Intel Xeon at ~90 s per epoch; the AMD EPYC machines take
    # about twice that)
    "cpu": accuracy.Profile(
        why=("`wide_resnet28w2` at CIFAR's native 32 px: its last map (the input of the add-on) "
             "is 8x8. 5000 training images (500 per class), batch 64 (78 steps per epoch), 8 "
             "epochs, lr 0.15, 100 prototypes, no queue, prototypes frozen (and the CA weight "
             "ramped up) for 1 epoch, 1 warm-up epoch, colour jitter 0.4/0.4/0.4/0.1, no blur, "
             "crops of at least 20%: the CPU probe of the project's HOST.md, under which the "
             "host's swav reached kNN-20 37.4% after 8 epochs against 29.9% at random init. "
             "About 25-30 min per run on a 2-core AMD EPYC."),
        seeds=(0, 1, 2), epochs=8, train_per_class=500, test_per_class=None, crop_size=32,
        batch_size=64, lr=0.15, warmup_epochs=1, num_prototypes=100, queue_size=0,
        epoch_queue_starts=0, freeze_prototypes_epochs=1, data_format="image_folder",
        num_workers=2, linear_epochs=100, linear_batch_size=256, eval_batch_size=256,
        extra=SPATIAL_AUGMENTATION, backbone="wide_resnet28w2",
    ),
    # one H200, the whole campaign in one device call of at most 9 minutes (an estimate: not
    # run here, no GPU lent yet): the 11 runs side by side as separate processes on the one GPU
    # (--jobs 11), each ~4 GB of GPU memory. Full CIFAR-10, 5 epochs of 195 steps of 256.
    "gpu": accuracy.Profile(
        why=("The cpu profile's spatial setting (`wide_resnet28w2` at 32 px, 8x8 map, the same "
             "augmentation, prototypes and schedule shape) on the whole CIFAR-10 training "
             "split: 5 epochs of 195 steps of 256 images, lr 0.15 x 256/256, mixed precision. "
             "The runs go side by side (`--jobs 11`) on one GPU so that the campaign fits one "
             "9-minute device call (estimated, not measured when written)."),
        seeds=(0, 1, 2), epochs=5, train_per_class=None, test_per_class=None, crop_size=32,
        batch_size=256, lr=0.15, warmup_epochs=1, num_prototypes=100, queue_size=0,
        epoch_queue_starts=0, freeze_prototypes_epochs=1, data_format="image_folder",
        num_workers=1, linear_epochs=30, linear_batch_size=1024, eval_batch_size=1024,
        extra=(*SPATIAL_AUGMENTATION, "precision=16-mixed"), backbone="wide_resnet28w2",
    ),
    # CI: the code path only
    "tiny": accuracy.Profile(
        why="CI check of the code path only: the numbers mean nothing.",
        seeds=(0, 1), epochs=1, train_per_class=8, test_per_class=4, crop_size=32,
        batch_size=16, lr=0.15, warmup_epochs=0, num_prototypes=10, queue_size=0,
        epoch_queue_starts=0, freeze_prototypes_epochs=0, data_format="image_folder",
        num_workers=1, linear_epochs=2, linear_batch_size=16, eval_batch_size=64,
        extra=SPATIAL_AUGMENTATION, backbone="wide_resnet28w2",
    ),
}


def plan(profile: accuracy.Profile, variants: Sequence[str],
         seeds: Optional[int] = None) -> List[Tuple[str, int]]:
    """(variant, seed) pairs, seed by seed; ``seeds`` overrides every variant's seed count."""
    pairs = []
    for i, seed in enumerate(profile.seeds):
        for variant in variants:
            wanted = VARIANTS[variant][2] if seeds is None else seeds
            if i < wanted:
                pairs.append((variant, seed))
    return pairs


def run_file_of(runs_dir: Path, variant: str, seed: int) -> Path:
    return runs_dir / f"{slug(variant)}-seed{seed}.json"


def run_parallel(pending: List[Tuple[str, int]], jobs: int, child_argv: List[str],
                 log_dir: Path) -> None:
    """Runs each (variant, seed) as its own process (``--only``), ``jobs`` at a time: side by
    side on one GPU. Each writes its own result file; a failed run is said, not fatal."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    log_dir.mkdir(parents=True, exist_ok=True)

    def one(pair: Tuple[str, int]) -> Tuple[str, int, int, Path]:
        variant, seed = pair
        log = log_dir / f"{slug(variant)}-seed{seed}.log"
        with log.open("w") as f:
            rc = subprocess.run([sys.executable, "-m", "benchmarks.controls", *child_argv,
                                 "--only", f"{variant}@{seed}", "--no-tables"],
                                stdout=f, stderr=subprocess.STDOUT,
                                cwd=Path(__file__).resolve().parent.parent).returncode
        return variant, seed, rc, log

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for variant, seed, rc, log in pool.map(one, pending):
            state = "done" if rc == 0 else f"FAILED (exit {rc}), see {log}"
            print(f"[controls] {variant} seed {seed}: {state}", flush=True)


def run_suite(profile_name: str, profile: accuracy.Profile, out: Path, data_root: Path,
              cifar_dir: Path, work_dir: Path, variants: Sequence[str],
              seeds: Optional[int] = None, only: Sequence[Tuple[str, int]] = (),
              jobs: int = 1, child_argv: Sequence[str] = (),
              tables: bool = True) -> Optional[Dict[str, Path]]:
    """Runs the missing (variant, seed) pairs (``only``: just these), ``jobs`` processes at a
    time, then writes the tables."""
    profile_dir = out / profile_name
    runs_dir = profile_dir / RUNS_DIR
    settings = accuracy.settings_of(profile)
    for path in sorted(runs_dir.glob("*.json")):
        if not accuracy.same_settings(json.loads(path.read_text())["base_settings"], settings):
            raise SystemExit(f"{path} was measured with other settings than profile "
                             f"{profile_name!r} has now: delete {runs_dir} (or pass another "
                             "--out) to start again")
    pending = [(v, s) for v, s in (list(only) or plan(profile, variants, seeds))
               if not run_file_of(runs_dir, v, s).exists()]
    random_file = runs_dir / f"{slug(RANDOM_INIT)}-seed{profile.seeds[0]}.json"
    paths = None
    if pending or not random_file.exists():
        paths = accuracy.profile_data(profile, data_root, cifar_dir)
    if not random_file.exists() and not only:
        print("[controls] random init: evaluating", flush=True)
        result = run_random_init(profile_name, profile, profile.seeds[0], *paths,
                                 work_dir / "random-init", random_file)
        accuracy.write_run_file(random_file, {**result, "benchmark": "controls",
                                              "variant": RANDOM_INIT, "base_settings": settings})
    if jobs > 1 and len(pending) > 1:
        print(f"[controls] {len(pending)} runs, {jobs} at a time as separate processes",
              flush=True)
        run_parallel(pending, jobs, list(child_argv), work_dir / "logs")
        pending = []
    for i, (variant, seed) in enumerate(pending, 1):
        method, overrides, _ = VARIANTS[variant]
        print(f"[controls] {i}/{len(pending)} {variant} seed {seed}: start", flush=True)
        varied = dataclasses.replace(profile, extra=profile.extra + overrides)
        result = accuracy.run_one(
            profile_name, varied, method, seed, *paths, work_dir / slug(variant),
            run_file_of(runs_dir, variant, seed),
            {"benchmark": "controls", "variant": variant, "base_settings": settings},
            resume=True, curves=CURVES if method == "swav_scaca" else (),
        )
        print(f"[controls] {variant} seed {seed}: kNN-20 {result['knn20_top1']:.2f}%, kNN-200 "
              f"{result['knn200_top1']:.2f}%, linear {result['linear_top1']:.2f}% "
              f"({result['wall_s']:.0f} s)", flush=True)
    if not tables:
        return None
    draw_mask_grids(profile_dir)
    return write_tables(profile_dir)


def draw_mask_grids(profile_dir: Path, rows: int = 6) -> List[Path]:
    """``masks-<variant>.png`` for every swav_scaca variant (its lowest seed): the checkpoint's
    own pairs and masks on 64 test images (``solo-scaca-masks``). Drawn once per run file;
    skipped (said) where the checkpoint is not on this machine."""
    from solo_scaca.cli.masks import main as masks_main

    drawn = []
    runs = sorted((r for r in load_runs(profile_dir) if r.get("method") == "swav_scaca"),
                  key=lambda r: r["seed"])
    for variant in VARIANTS:
        run = next((r for r in runs if r["variant"] == variant), None)
        if run is None:
            continue
        out = profile_dir / f"masks-{slug(variant)}.png"
        if out.exists() and out.stat().st_mtime >= run_file_of(
                profile_dir / RUNS_DIR, variant, run["seed"]).stat().st_mtime:
            continue
        if not Path(run["checkpoint"]).exists():
            print(f"[controls] masks of {variant}: checkpoint {run['checkpoint']} is not here, "
                  "not drawn", flush=True)
            continue
        masks_main(["--ckpt", run["checkpoint"], "--images", run["test_path"], "--out",
                    str(out), "--n", str(rows), "--batch", "64"])
        drawn.append(out)
    return drawn


# ------------------------------------------------------------------------------------ tables
def pooled_ttest(a: List[float], b: List[float]) -> Dict[str, Any]:
    """``diff`` = mean(a) - mean(b) and whether it exceeds the seed noise: the accuracy table's
    two-sample t-test at 5% (pooled std), n/a below 2 runs on either side."""
    if not a or not b:
        return {"diff": "n/a", "exceeds_noise": "n/a"}
    (ma, sa), (mb, sb) = accuracy.mean_std(a), accuracy.mean_std(b)
    if sa is None or sb is None:
        return {"diff": ma - mb, "exceeds_noise": "1 seed"}
    df = len(a) + len(b) - 2
    pooled = math.sqrt(((len(a) - 1) * sa ** 2 + (len(b) - 1) * sb ** 2) / df)
    threshold = accuracy.t_critical(df) * pooled * math.sqrt(1 / len(a) + 1 / len(b))
    return {"diff": ma - mb, "exceeds_noise": "yes" if abs(ma - mb) > threshold else "no"}


def load_runs(profile_dir: Path) -> List[Dict[str, Any]]:
    runs = [json.loads(p.read_text()) for p in sorted((profile_dir / RUNS_DIR).glob("*.json"))]
    return [r for r in runs if r.get("benchmark") == "controls"]


def last(run: Dict[str, Any], key: str) -> Optional[float]:
    curve = run.get(f"{key}_per_epoch") or []
    return curve[-1] if curve else None


def summary_rows(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One row per variant: accuracies (mean, std, n), t-tests against swav and the uniform
    control on each accuracy, mechanism metrics of the last epoch (mean over seeds)."""
    by_variant: Dict[str, List[Dict[str, Any]]] = OrderedDict()
    for name in [RANDOM_INIT, *VARIANTS]:
        chosen = [r for r in runs if r["variant"] == name]
        if chosen:
            by_variant[name] = sorted(chosen, key=lambda r: r["seed"])
    rows = []
    for name, chosen in by_variant.items():
        row: Dict[str, Any] = {"variant": name, "n": len(chosen),
                               "seeds": " ".join(str(r["seed"]) for r in chosen)}
        for key, short in (("knn20_top1", "knn20"), ("knn200_top1", "knn200"),
                           ("linear_top1", "linear")):
            values = [r[key] for r in chosen]
            mean, std = accuracy.mean_std(values)
            row[short] = f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")
            row[f"{short}_mean"], row[f"{short}_std"] = mean, std if std is not None else ""
            for ref, col in ((SWAV, "vs_swav"), (UNIFORM, "vs_uniform")):
                if name in (ref, RANDOM_INIT) or ref not in by_variant:
                    continue
                test = pooled_ttest(values, [r[key] for r in by_variant[ref]])
                row[f"{short}_{col}"] = (
                    "n/a" if test["diff"] == "n/a" else
                    f"{test['diff']:+.2f} ({test['exceeds_noise']})")
        for key, short in MECHANISM:
            values = [v for v in (last(r, key) for r in chosen) if v is not None]
            row[short] = sum(values) / len(values) if values else ""
        rows.append(row)
    return rows


COLUMNS = ["variant", "n", "knn20", "knn20_vs_swav", "knn20_vs_uniform", "knn200",
           "knn200_vs_swav", "knn200_vs_uniform", "linear", "linear_vs_swav",
           "linear_vs_uniform", "entropy", "peak", "to_uniform", "sensitivity", "same_proto",
           "same_class"]
CSV_COLUMNS = ["variant", "n", "seeds", "knn20_mean", "knn20_std", "knn200_mean", "knn200_std",
               "linear_mean", "linear_std"] + [c for c in COLUMNS if "_vs_" in c] + [
                   short for _, short in MECHANISM]
RUN_COLUMNS = ["variant", "seed", "knn20_top1", "knn200_top1", "linear_top1", "swav_loss_last",
               "plateau", *[f"last_{short}" for _, short in MECHANISM], "pretrain_s", "eval_s",
               "device", "checkpoint"]


def notes(profile_name: str, profile: accuracy.Profile, rows: List[Dict[str, Any]]) -> str:
    missing = [f"`{v}` ({VARIANTS[v][2]} seed(s) planned)" for v in VARIANTS
               if v not in {r["variant"] for r in rows}]
    lines = []
    if missing:
        lines += [f"**Not run yet:** {', '.join(missing)}; `python3 -m benchmarks controls "
                  f"--profile {profile_name}` resumes.", ""]
    lines += [
        f"Profile `{profile_name}`: {profile.why}",
        "",
        "- Every variant: the same data, seeds, schedule and evaluation, through the plugin's "
        "pretraining command on the shipped `scripts/pretrain/custom/swav_scaca.yaml` with the "
        "profile's overrides and the variant's one `method_kwargs` override; `swav` is the "
        "host's SwAV. `ca_mask=uniform` pools with 1/HW: the masked branch is then SwAV's own "
        "branch and the total loss is (1 + ca_weight) x L_swav, the control for the extra loss "
        "term. `random init`: the same backbone untrained (seed "
        f"{profile.seeds[0]}).",
        "- Evaluation (as `accuracy.md`): k-NN (the host's `WeightedKNNClassifier`, cosine, "
        "T=0.07) and the host's `LinearModel` on the frozen backbone's features; the whole "
        f"training subset as memory bank; test: "
        f"{'the whole test split' if profile.test_per_class is None else f'{profile.test_per_class} per class'}"
        f" at {profile.crop_size} px. Accuracies in %, mean ± sample std over seeds.",
        "- `*_vs_swav`, `*_vs_uniform`: the variant's mean minus the reference's, and in "
        "brackets whether it exceeds the seed noise (two-sample t-test at 5%, pooled std; "
        "n/a with one seed on either side).",
        "- Mechanism metrics, the last epoch's mean over its steps (Lightning's `*_epoch`), "
        "mean over seeds (docs/method.md section 6): `entropy` = H(mask) / ln HW (1 = uniform); "
        "`peak` = HW x max mask (1 = uniform); `to_uniform` = L1 distance of the mask to the "
        "uniform mask; `sensitivity` = L1 distance between the mask with the chosen partner and "
        "with a random other image of the batch (0 = the partner does not matter); "
        "`same_proto`, `same_class`: share of partners with the same code argmax, the same "
        "label (1/10 for random partners on CIFAR-10).",
    ]
    return "\n".join(lines)


def plot(runs: List[Dict[str, Any]], path: Path, title: str) -> Optional[Path]:
    """Mask entropy and partner sensitivity per epoch, one line per variant (mean over
    seeds); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[controls] matplotlib is not installed: no plot", flush=True)
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (key, label) in zip(axes, (("train_ca_mask_entropy", "mask entropy / ln HW"),
                                       ("train_ca_partner_sensitivity",
                                        "partner sensitivity (L1)"))):
        for variant in VARIANTS:
            curves = [r.get(f"{key}_per_epoch") or [] for r in runs if r["variant"] == variant]
            curves = [c for c in curves if c]
            if not curves:
                continue
            epochs = min(len(c) for c in curves)
            mean = [sum(c[e] for c in curves) / len(curves) for e in range(epochs)]
            ax.plot(range(1, epochs + 1), mean, marker="o", ms=3,
                    label=f"{variant} (n={len(curves)})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_tables(profile_dir: Path) -> Dict[str, Path]:
    """``controls.{md,csv}``, ``controls_runs.{md,csv}`` and ``controls.png`` from the run
    files of ``profile_dir``."""
    runs = load_runs(profile_dir)
    if not runs:
        raise SystemExit(f"no control runs under {profile_dir / RUNS_DIR}")
    name = runs[0]["profile"]
    fields = {k: tuple(v) if isinstance(v, list) else v
              for k, v in runs[0]["base_settings"].items()}
    profile = accuracy.Profile(why=PROFILES[name].why if name in PROFILES else "", **fields)
    for run in runs:
        run.update(accuracy.learning_check(run.get("swav_loss_per_epoch", []),
                                           profile.num_prototypes))
        run.update({f"last_{short}": last(run, key) for key, short in MECHANISM})
    pretrained = [r for r in runs if r["variant"] != RANDOM_INIT]
    meta = {k: (pretrained or runs)[-1][k]
            for k in ("command", "commit", "machine", "versions", "date")}
    meta["runs"] = f"{len(pretrained)} pretrained + random init (result files in {RUNS_DIR}/)"
    meta["wall time, all runs"] = f"{sum(r['wall_s'] for r in runs) / 60:.1f} min"
    rows = summary_rows(runs)
    text = notes(name, profile, rows)
    paths = {
        "table": write_table("controls", f"Controls: does the cross-attention help? ({name})",
                             rows, COLUMNS, meta, text, profile_dir),
        "runs": write_table("controls_runs", f"Controls, every run ({name})", runs,
                            RUN_COLUMNS, meta, accuracy.RUN_NOTES, profile_dir),
    }
    # the csv keeps the numbers unformatted
    write_csv(profile_dir / "controls.csv", rows, CSV_COLUMNS)
    png = plot(pretrained, profile_dir / "controls.png",
               f"Mechanism metrics per epoch, {name} profile (mean over seeds)")
    if png is not None:
        paths["plot"] = png
    return paths


def write_csv(path: Path, rows: List[Dict[str, Any]], columns: Sequence[str]) -> None:
    import csv

    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def rebuild_tables(profile_dir: Path) -> Optional[Dict[str, Path]]:
    """The tables of a profile folder rebuilt from its run files (``report``); None without
    control run files."""
    return write_tables(profile_dir) if load_runs(profile_dir) else None


def main(argv=None) -> Dict[str, Path]:
    """Command-line entry point (also ``python3 -m benchmarks controls``)."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks controls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=list(PROFILES), default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        metavar="VARIANT", help=f"default: all of {list(VARIANTS)}")
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds per variant (default: each variant's own count)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of the profile (e.g. epochs=4); repeat")
    parser.add_argument("--data-root", type=Path, default=accuracy.DEFAULT_DATA_ROOT)
    parser.add_argument("--cifar-dir", type=Path, default=None,
                        help="folder of CIFAR-10's train.tar.gz and test.tar.gz (default: "
                             "$SOLO_SCACA_SHARED_DATA/cifar10, else ../shared/data/cifar10)")
    parser.add_argument("--work-dir", type=Path,
                        default=accuracy.DEFAULT_WORK_DIR / "controls",
                        help="where the pretraining checkpoints go (outside the repository)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs side by side as separate processes (one GPU: the gpu "
                             "profile's campaign uses 11)")
    parser.add_argument("--only", action="append", default=[], metavar="VARIANT@SEED",
                        help="run just this pair (repeat); used by --jobs")
    parser.add_argument("--no-tables", action="store_true", help="do not write the tables")
    args = parser.parse_args(argv)
    only = []
    for item in args.only:
        variant, sep, seed = item.rpartition("@")
        if not sep or variant not in VARIANTS or not seed.isdigit():
            parser.error(f"--only takes VARIANT@SEED with VARIANT one of {list(VARIANTS)}, "
                         f"got {item!r}")
        only.append((variant, int(seed)))
    if args.jobs < 1:
        parser.error(f"--jobs={args.jobs}: allowed values are integers >= 1")
    profile = PROFILES[args.profile]
    for item in args.set:
        profile = dataclasses.replace(profile, **accuracy.parse_field(parser, profile, item))
    cifar_dir = args.cifar_dir or accuracy.shared_data_dir() / "cifar10"
    child_argv = ["--profile", args.profile, "--out", str(args.out),
                  "--data-root", str(args.data_root), "--cifar-dir", str(cifar_dir),
                  "--work-dir", str(args.work_dir), *(f"--set={i}" for i in args.set)]
    return run_suite(args.profile, profile, args.out, args.data_root.expanduser(), cifar_dir,
                     args.work_dir.expanduser(), args.variants, args.seeds, only, args.jobs,
                     child_argv, not args.no_tables)


if __name__ == "__main__":
    main()
