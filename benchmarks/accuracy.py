"""Accuracy of swav_scaca against the host's swav on the real CIFAR-10: both methods pretrained
with identical settings, budget and seeds through the plugin's pretraining command
(``solo_scaca.cli.pretrain.pretrain`` on a config composed from the shipped
``scripts/pretrain/custom/swav_scaca.yaml``), then each backbone evaluated on the test split with
the host's weighted k-NN classifier (k=20 and k=200, cosine) and the host's ``LinearModel``.

    python3 -m benchmarks accuracy --profile cpu    # ~75 min on 2 CPU cores (benchmarks/profiles.py)
    python3 -m benchmarks accuracy --profile gpu    # ~9 min on one H100 (estimate)
    python3 -m benchmarks accuracy --profile tiny   # seconds: what CI runs

Each run (method, seed) writes ``<out>/<profile>/runs/<method>-seed<seed>.json``; a rerun skips
the runs whose file exists, so an interrupted suite resumes where it stopped (an unfinished run
starts again from scratch, so that every run is one uninterrupted training). The tables
(``accuracy.md/.csv``, ``accuracy_runs.md/.csv``) and ``accuracy.png`` are rebuilt from the
run files at the end of every invocation.

Data: the tarballs of ``shared/data/cifar10`` are checked against their sha256 and extracted once
into ``--data-root`` (default ``~/.cache/solo-scaca/cifar10``); a training subset is a folder of
symlinks (first N files per class, sorted by name) that the host's ``data.dataset=custom``
ImageFolder reads.
"""

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from benchmarks.common import RESULTS, write_table
from benchmarks.data import (
    CHECKSUMS,
    DATASET_LABELS,
    DEFAULT_DATA_ROOT,
    DEFAULT_WORK_DIR,
    profile_data,
    shared_data_dir,
)
from benchmarks.profiles import (
    PROFILES,
    Profile,
    parse_field,
    profile_from_settings,
    same_settings,
    settings_of,
)
from benchmarks.runs import PLATEAU_NATS, RUN_NOTES, learning_check, run_one
from benchmarks.stats import mean_std, pooled_ttest

METHODS = ("swav", "swav_scaca")
METRICS = (("knn20_top1", "kNN-20 top-1"), ("knn200_top1", "kNN-200 top-1"),
           ("linear_top1", "linear top-1"))


def results_folder(profile_name: str, dataset: str) -> str:
    """A suite's folder under the results: the profile's name (``-<dataset>`` beside CIFAR-10)."""
    return profile_name if dataset == "cifar10" else f"{profile_name}-{dataset}"


def summary_rows(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One row per metric: mean and std over seeds of each method, the difference
    swav_scaca - swav, and whether it exceeds the seed noise (two-sample t-test at 5%)."""
    rows = []
    for key, label in METRICS:
        values = {m: [r[key] for r in runs if r["method"] == m] for m in METHODS}
        row: Dict[str, Any] = {"metric": label}
        stats = {}
        for m in METHODS:
            if values[m]:
                stats[m] = mean_std(values[m])
                row[f"{m}_mean"] = stats[m][0]
                row[f"{m}_std"] = stats[m][1] if stats[m][1] is not None else "n/a"
            row[f"{m}_n"] = len(values[m])
        row["n_seeds"] = "/".join(str(len(values[m])) for m in METHODS)
        if len(stats) < 2:
            row.update(diff="n/a", threshold="n/a", exceeds_noise="n/a (a method has no runs)")
            rows.append(row)
            continue
        test = pooled_ttest(values["swav_scaca"], values["swav"])
        row.update(test)
        if test["exceeds_noise"] == "1 seed":
            row["exceeds_noise"] = "n/a (1 seed)"
        rows.append(row)
    return rows


SUMMARY_COLUMNS = ["metric", "swav_mean", "swav_std", "swav_scaca_mean", "swav_scaca_std",
                   "n_seeds", "diff", "threshold", "exceeds_noise"]
RUN_COLUMNS = ["method", "seed", "knn20_top1", "knn200_top1", "linear_top1", "knn20_top5",
               "linear_top5", "swav_loss_last", "ln_prototypes", "plateau", "train_images",
               "test_images", "pretrain_steps", "s_per_step",
               "pretrain_s", "eval_s", "wall_s", "device", "data_format", "checkpoint"]


def plot(rows: List[Dict[str, Any]], path: Path, title: str,
         dataset: str = "CIFAR-10") -> Optional[Path]:
    """Bar chart of mean +- std per method and metric; None (said) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[accuracy] matplotlib is not installed (pip install matplotlib): no plot",
              flush=True)
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.38
    for i, method in enumerate(METHODS):
        means = [r.get(f"{method}_mean", float("nan")) for r in rows]
        stds = [r.get(f"{method}_std") for r in rows]
        stds = [s if isinstance(s, float) else 0.0 for s in stds]
        xs = [j + (i - 0.5) * width for j in range(len(rows))]
        bars = ax.bar(xs, means, width, yerr=stds, capsize=4, label=method)
        ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=8)
    ax.set_xticks(range(len(rows)), [r["metric"] for r in rows])
    ax.set_ylabel(f"{dataset} test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(ncol=len(METHODS), loc="upper center", bbox_to_anchor=(0.5, -0.1),
              frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def dataset_label(runs: List[Dict[str, Any]]) -> str:
    """The runs' dataset, as written in the tables (run files before the option: CIFAR-10)."""
    return DATASET_LABELS[runs[0].get("dataset", "cifar10")]


def notes(profile_name: str, profile: Profile, runs: List[Dict[str, Any]]) -> str:
    def one(values):
        values = sorted({str(v) for v in values})
        return values[0] if len(values) == 1 else " / ".join(values)

    def per_class(n):
        return "the whole split" if n is None else f"{n} per class, the first by file name"
    grid = profile.crop_size // 32
    lines = [
        f"Profile `{profile_name}`: {profile.why}",
        "",
        f"- Data: real {dataset_label(runs)} (32 px JPEG). Training: "
        f"{one(r['train_images'] for r in runs)} "
        f"images ({per_class(profile.train_per_class)}), unlabelled for pretraining, labelled "
        "for the k-NN memory bank and the linear classifier. Test: "
        f"{one(r['test_images'] for r in runs)} images of the test split "
        f"({per_class(profile.test_per_class)}).",
        "- Resolution: `data.dataset=custom` gives ResNet-18 its ImageNet stem (stride-2 conv "
        "and max pool): at 32 px `layer4` would be 1x1 and the add-on would have no spatial map. "
        f"So both methods pretrain on {profile.crop_size} px crops (the host's "
        "RandomResizedCrop upsamples the 32 px images) and are evaluated at "
        f"{profile.crop_size} px (resize + centre crop); `layer4` is {grid}x{grid}.",
        "- Pretraining, identical for both methods (only `method` differs; the host's SwAV "
        "ignores the `ca_*` keys of `method_kwargs`): the plugin's pretraining command "
        "(`solo_scaca.cli.pretrain.pretrain`) on the shipped "
        "`scripts/pretrain/custom/swav_scaca.yaml` (ResNet-18, LARS, warmup_cosine, its "
        "augmentations"
        + (", overridden by " + ", ".join(f"`{o}`" for o in profile.hydra_overrides)
           if profile.hydra_overrides else "")
        + f"), {profile.epochs} epochs, batch {profile.batch_size}, lr "
        f"{profile.lr} x batch/256, {profile.warmup_epochs} warm-up epoch(s), "
        f"{profile.num_prototypes} prototypes, queue {profile.queue_size} from epoch "
        f"{profile.epoch_queue_starts}, prototypes frozen (and the CA weight ramped up) for "
        f"{profile.freeze_prototypes_epochs} epoch(s); loader "
        f"{one(r['data_format'] for r in runs)}; device {one(r['device'] for r in runs)}; "
        f"seeds {list(profile.seeds)} (a seed sets the initialisation and the data order, the "
        "same for both methods).",
        "- k-NN: the host's `WeightedKNNClassifier` (cosine, T=0.07), k=20 and k=200, on the "
        "backbone's pooled features, the training images as memory bank.",
        "- Linear: the host's `LinearModel` with the shipped "
        "`scripts/linear/custom/swav_scaca.yaml` recipe (SGD, lr 0.15 x batch/256, step decay "
        f"x0.1 at 60% and 80% of the epochs), {profile.linear_epochs} epochs, batch "
        f"{profile.linear_batch_size}, on the frozen backbone's features of the un-augmented "
        "training images, computed once (the frozen eval-mode backbone gives the same features "
        "every epoch; the host's recipe also augments the training images, this one does not).",
        "- Significance: `exceeds_noise` is `yes` when |diff| > threshold = t(0.975, n_a+n_b-2) "
        "x pooled std x sqrt(1/n_a + 1/n_b): a two-sample t-test at 5% over seeds (n/a with a "
        "single seed). `diff` = swav_scaca - swav; `n_seeds` = runs of swav / swav_scaca. "
        "Accuracies in %, std = sample std over seeds.",
    ]
    return "\n".join(lines)


def write_tables(profile_name: str, profile: Profile, out_dir: Path,
                 runs: List[Dict[str, Any]]) -> Dict[str, Path]:
    """``accuracy.{md,csv}``, ``accuracy_runs.{md,csv}`` and ``accuracy.png`` from the runs."""
    runs = sorted(runs, key=lambda r: (METHODS.index(r["method"]), r["seed"]))
    runs = [{**r, **learning_check(r.get("swav_loss_per_epoch", []), profile.num_prototypes)}
            for r in runs]
    meta = {k: runs[-1][k] for k in ("command", "commit", "machine", "versions", "date")}
    meta["runs"] = f"{len(runs)} (result files in runs/)"
    meta["wall time, all runs"] = f"{sum(r['wall_s'] for r in runs) / 60:.1f} min"
    rows = summary_rows(runs)
    text = notes(profile_name, profile, runs)
    stuck = [r for r in runs if r["plateau"] == "yes"]
    if stuck:
        text = (f"**Warning: {len(stuck)} of {len(runs)} runs ended on SwAV's plateau** (last-"
                f"epoch loss within {PLATEAU_NATS} of ln K = {math.log(profile.num_prototypes):.3f}"
                ", the loss of uniform predictions: see `accuracy_runs.md`). Such runs did not "
                "learn; their accuracies compare two untrained-like backbones, not the methods."
                "\n\n" + text)
    paths = {
        "summary": write_table("accuracy", f"Accuracy: swav_scaca against swav ({profile_name})",
                               rows, SUMMARY_COLUMNS, meta, text, out_dir),
        "runs": write_table("accuracy_runs", f"Accuracy, every run ({profile_name})", runs,
                            RUN_COLUMNS, meta, RUN_NOTES, out_dir),
    }
    seeds = sorted({r["seed"] for r in runs})
    label = dataset_label(runs)
    png = plot(rows, out_dir / "accuracy.png",
               f"{label} test, {profile_name} profile: mean ± std over seeds {seeds}", label)
    if png is not None:
        paths["plot"] = png
    return paths


def rebuild_tables(profile_dir: Path) -> Optional[Dict[str, Path]]:
    """The tables and plot of a profile folder rebuilt from its run files alone (``report``
    does this); None when the folder has no accuracy run files."""
    runs = [json.loads(p.read_text()) for p in sorted((profile_dir / "runs").glob("*.json"))]
    runs = [r for r in runs if r.get("benchmark") == "accuracy"]
    if not runs:
        return None
    name = runs[0]["profile"]
    settings = runs[0]["settings"]
    if any(not same_settings(r["settings"], settings) for r in runs):
        raise ValueError(f"{profile_dir / 'runs'} mixes run files of different settings")
    settings = {**settings, "seeds": sorted({r["seed"] for r in runs})}
    known = PROFILES["accuracy"].get(name)
    why = (known.why if known is not None and same_settings(settings_of(known), settings) else
           f"the settings recorded in the run files, which are not profile {name!r}'s current "
           f"ones (changed on the command line, or an earlier version of the profile: see "
           f"`settings` in the run files).")
    return write_tables(name, profile_from_settings(settings, why), profile_dir, runs)


# ---------------------------------------------------------------------------------------- main
def run_suite(profile_name: str, profile: Profile, out: Path, data_root: Path,
              cifar_dir: Path, work_dir: Path, methods: Sequence[str] = METHODS,
              dataset: str = "cifar10") -> Dict[str, Path]:
    out_dir = out / results_folder(profile_name, dataset)
    if dataset != "cifar10":
        work_dir = work_dir / dataset
    runs_dir = out_dir / "runs"
    settings = settings_of(profile)
    for run_file in sorted(runs_dir.glob("*.json")):  # every one goes into the tables
        if not same_settings(json.loads(run_file.read_text()).get("settings", {}), settings):
            raise SystemExit(
                f"{run_file} was measured with other settings than profile "
                f"{profile_name!r} has now: delete {runs_dir} (or pass another --out) to "
                f"start the suite again")
    pending = []
    for method, seed in [(m, s) for s in profile.seeds for m in methods]:
        run_file = runs_dir / f"{method}-seed{seed}.json"
        if run_file.exists():
            print(f"[accuracy] {method} seed {seed}: already done ({run_file}), skipped",
                  flush=True)
        else:
            pending.append((method, seed, run_file))
    if pending:
        if profile_name == "gpu":
            import torch

            if not torch.cuda.is_available():
                print("[accuracy] warning: profile 'gpu' without a CUDA device will take many "
                      "hours", flush=True)
        train_path, test_path = profile_data(profile, data_root, cifar_dir, dataset)
        for i, (method, seed, run_file) in enumerate(pending, 1):
            print(f"[accuracy] run {i}/{len(pending)} ({profile_name}): {method} seed {seed}, "
                  f"{profile.epochs} epoch(s): start", flush=True)
            result = run_one(profile_name, profile, method, seed, train_path, test_path,
                             work_dir, run_file, {"dataset": dataset})
            print(f"[accuracy] run {i}/{len(pending)}: {method} seed {seed}: done in "
                  f"{result['wall_s']:.0f} s: kNN-20 {result['knn20_top1']:.2f}%, kNN-200 "
                  f"{result['knn200_top1']:.2f}%, linear {result['linear_top1']:.2f}% "
                  f"-> {run_file}", flush=True)
    # the tables of every run file in the folder: seeds of earlier invocations included
    paths = rebuild_tables(out_dir)
    print(f"[accuracy] tables: {', '.join(str(p) for p in paths.values())}", flush=True)
    return paths


def main(argv=None) -> Dict[str, Path]:
    """Command-line entry point (also ``python3 -m benchmarks accuracy``)."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=list(PROFILES["accuracy"]), default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="results folder (the profile's subfolder is used)")
    parser.add_argument("--dataset", choices=list(CHECKSUMS), default="cifar10",
                        help="cifar10 (default) or cifar100: same layout (train/<class>/, "
                             "test/<class>/); results of cifar100 go to <profile>-cifar100/")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="extracted dataset (train/, test/), made from --cifar-dir if absent "
                             "(default: ~/.cache/solo-scaca/<dataset>)")
    parser.add_argument("--cifar-dir", type=Path, default=None,
                        help="folder of train.tar.gz and test.tar.gz "
                             "(default: $SOLO_SCACA_SHARED_DATA/<dataset>, else "
                             "../shared/data/<dataset> beside the repository)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR,
                        help="where the pretraining checkpoints go (outside the repository)")
    parser.add_argument("--epochs", type=int, help="override the profile's pretraining epochs")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the profile's seeds")
    parser.add_argument("--train-per-class", type=int,
                        help="override the profile's training images per class")
    parser.add_argument("--test-per-class", type=int,
                        help="override the profile's test images per class")
    parser.add_argument("--batch-size", type=int, help="override the profile's pretraining batch")
    parser.add_argument("--num-workers", type=int, help="override the profile's loader workers")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any field of the profile (e.g. lr=0.15, crop_size=32); "
                             "repeat. For tuning: results go with the changed settings")
    parser.add_argument("--override", action="append", default=[], metavar="HYDRA_OVERRIDE",
                        help="a further Hydra override of the pretraining config for both "
                             "methods (e.g. ++method_kwargs.sk_epsilon=0.02); repeat")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    args = parser.parse_args(argv)
    profile = PROFILES["accuracy"][args.profile]
    for key in ("epochs", "train_per_class", "test_per_class", "batch_size", "num_workers"):
        if getattr(args, key) is not None:
            profile = dataclasses.replace(profile, **{key: getattr(args, key)})
    for item in args.set:
        profile = dataclasses.replace(profile, **parse_field(parser, profile, item))
    if args.override:
        profile = dataclasses.replace(profile, hydra_overrides=profile.hydra_overrides + tuple(args.override))
    if args.seeds is not None:
        profile = dataclasses.replace(profile, seeds=tuple(args.seeds))
    cifar_dir = args.cifar_dir or shared_data_dir() / args.dataset
    data_root = args.data_root or DEFAULT_DATA_ROOT.parent / args.dataset
    return run_suite(args.profile, profile, args.out, data_root.expanduser(), cifar_dir,
                     args.work_dir.expanduser(), methods=args.methods, dataset=args.dataset)


if __name__ == "__main__":
    main()
