"""Ablations of swav_scaca on the accuracy benchmark's profile (docs/method.md sections 1, 3): the pairing
mode, the CA loss weight and the partner term, one seed each, beside the host's swav and a
randomly initialised backbone as references.

    python3 -m benchmarks ablations --profile cpu    # ~105 min on 2 CPU cores (measured)
    python3 -m benchmarks ablations --profile tiny   # seconds: what CI runs

Every variant is the accuracy profile with one ``method_kwargs`` override, pretrained and
evaluated exactly as ``benchmarks/accuracy.py`` does (same command, data, seed, k-NN and linear
evaluation). The ``swav`` and ``swav_scaca`` (default) rows are the accuracy suite's run files of
the same seed when they exist with the same settings (``<profile>/runs/``), else they are run
here. Each variant writes ``<out>/<profile>/ablation_runs/<variant>.json`` and is skipped when
that file exists, so an interrupted suite resumes. Writes ``ablations.md/.csv`` and
``ablations.png``.
"""

import argparse
import dataclasses
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from benchmarks import data, profiles, runs
from benchmarks.campaign import RANDOM_INIT, add_data_arguments, run_random_init, slug
from benchmarks.common import RESULTS, write_table

RUNS_DIR = "ablation_runs"
# variant -> (method, method_kwargs overrides). The default of swav_scaca is prototype pairing,
# ca_weight 1 and no partner term (ca_partner_weight 0).
VARIANTS: "OrderedDict[str, Tuple[str, Tuple[str, ...]]]" = OrderedDict([
    (RANDOM_INIT, ("swav", ())),
    ("swav", ("swav", ())),
    ("swav_scaca (default)", ("swav_scaca", ())),
    ("ca_pairing=nn", ("swav_scaca", ("method_kwargs.ca_pairing=nn",))),
    ("ca_pairing=self", ("swav_scaca", ("method_kwargs.ca_pairing=self",))),
    ("ca_pairing=random", ("swav_scaca", ("method_kwargs.ca_pairing=random",))),
    ("ca_weight=0.25", ("swav_scaca", ("method_kwargs.ca_weight=0.25",))),
    ("ca_weight=0.5", ("swav_scaca", ("method_kwargs.ca_weight=0.5",))),
    ("ca_weight=2", ("swav_scaca", ("method_kwargs.ca_weight=2.0",))),
    ("partner term on", ("swav_scaca", ("method_kwargs.ca_partner_weight=1.0",))),
])
# the accuracy suite's run file that a variant may reuse
REUSABLE = {"swav": "swav", "swav_scaca (default)": "swav_scaca"}
COLUMNS = ["variant", "method", "overrides", "seed", "knn20_top1", "knn200_top1", "linear_top1",
           "d_knn20", "d_knn200", "d_linear", "swav_loss_last", "plateau", "s_per_step",
           "source"]


def reusable_run(profile_dir: Path, variant: str, seed: int,
                 settings: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The accuracy suite's run file of the same method, seed and settings, if any."""
    method = REUSABLE.get(variant)
    path = profile_dir / "runs" / f"{method}-seed{seed}.json"
    if method is None or not path.exists():
        return None
    run = json.loads(path.read_text())
    return run if profiles.same_settings(run.get("settings", {}), settings) else None


def run_suite(profile_name: str, profile: profiles.Profile, out: Path, data_root: Path,
              cifar_dir: Path, work_dir: Path, seed: int,
              variants: List[str]) -> Dict[str, Path]:
    """Runs the missing variants (one seed each) and writes the table."""
    profile_dir = out / profile_name
    runs_dir = profile_dir / RUNS_DIR
    settings = profiles.settings_of(profile)
    paths: Optional[Tuple[Path, Path]] = None
    for i, variant in enumerate(variants, 1):
        method, overrides = VARIANTS[variant]
        run_file = runs_dir / f"{slug(variant)}.json"
        label = f"[ablations] {i}/{len(variants)} {variant}"
        if run_file.exists():
            done = json.loads(run_file.read_text())
            if done.get("seed") != seed or not profiles.same_settings(
                    done.get("base_settings", done.get("settings", {})), settings):
                raise SystemExit(f"{run_file} was measured with other settings or seed: delete "
                                 f"{runs_dir} (or pass another --out) to start again")
            print(f"{label}: already done ({run_file}), skipped", flush=True)
            continue
        if reusable_run(profile_dir, variant, seed, settings) is not None:
            print(f"{label}: the accuracy suite's run of seed {seed} is used", flush=True)
            continue
        if paths is None:
            paths = data.profile_data(profile, data_root, cifar_dir)
        print(f"{label}: start", flush=True)
        variant_dir = work_dir / "ablations" / slug(variant)
        if variant == RANDOM_INIT:
            result = run_random_init(profile_name, profile, seed, *paths, variant_dir, run_file)
        else:
            varied = dataclasses.replace(profile, hydra_overrides=profile.hydra_overrides + overrides)
            result = runs.run_one(profile_name, varied, method, seed, *paths, variant_dir,
                                      run_file, {"benchmark": "ablation",
                                                 "base_settings": settings})
        print(f"{label}: kNN-20 {result['knn20_top1']:.2f}%, kNN-200 "
              f"{result['knn200_top1']:.2f}%, linear {result['linear_top1']:.2f}% "
              f"({result['wall_s']:.0f} s)", flush=True)
    return write_tables(profile_name, profile, profile_dir, seed)


def collect(profile_dir: Path, profile: profiles.Profile, seed: int) -> List[Dict[str, Any]]:
    """One row per variant that has a result (own run file or the accuracy suite's)."""
    settings = profiles.settings_of(profile)
    rows = []
    for variant, (method, overrides) in VARIANTS.items():
        path = profile_dir / RUNS_DIR / f"{slug(variant)}.json"
        run = json.loads(path.read_text()) if path.exists() else None
        source = f"{RUNS_DIR}/{path.name}"
        if run is None:
            run = reusable_run(profile_dir, variant, seed, settings)
            source = f"runs/{REUSABLE.get(variant)}-seed{seed}.json"
        if run is None:
            continue
        check = runs.learning_check(run.get("swav_loss_per_epoch", []),
                                        profile.num_prototypes)
        if variant == RANDOM_INIT:
            check = {"swav_loss_last": "-", "plateau": "-"}
        rows.append({"variant": variant, "method": method, **check,
                     "overrides": " ".join(o.split(".", 1)[1] for o in overrides) or "-",
                     "seed": run["seed"], "source": source,
                     **{k: run[k] for k in ("knn20_top1", "knn200_top1", "linear_top1",
                                            "s_per_step", "command", "commit", "machine",
                                            "versions", "date", "wall_s")}})
    base = next((r for r in rows if r["variant"] == "swav"), None)
    for row in rows:
        for key, col in (("knn20_top1", "d_knn20"), ("knn200_top1", "d_knn200"),
                         ("linear_top1", "d_linear")):
            row[col] = row[key] - base[key] if base is not None else "n/a"
    return rows


def plot(rows: List[Dict[str, Any]], path: Path, title: str) -> Optional[Path]:
    """Horizontal bars of kNN-20 and linear top-1 per variant; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[ablations] matplotlib is not installed: no plot", flush=True)
        return None
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    ys = list(range(len(rows)))[::-1]
    for offset, (key, label) in zip((-0.2, 0.2), (("knn20_top1", "kNN-20"),
                                                   ("linear_top1", "linear"))):
        bars = ax.barh([y + offset for y in ys], [r[key] for r in rows], 0.38, label=label)
        ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=7)
    ax.set_yticks(ys, [r["variant"] for r in rows], fontsize=8)
    ax.set_xlabel("CIFAR-10 test top-1 (%)")
    ax.set_title(title, fontsize=9)
    # outside the axes: inside, it covers the bottom row's bars
    ax.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.08 - 0.6 / len(rows)),
              fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_tables(profile_name: str, profile: profiles.Profile, profile_dir: Path,
                 seed: int) -> Dict[str, Path]:
    rows = collect(profile_dir, profile, seed)
    if not rows:
        raise SystemExit(f"no ablation results under {profile_dir}")
    own = [r for r in rows if r["source"].startswith(RUNS_DIR)] or rows
    meta = {k: own[-1][k] for k in ("command", "commit", "machine", "versions", "date")}
    meta["seed"] = seed
    meta["wall time, own runs"] = f"{sum(r['wall_s'] for r in own) / 60:.1f} min"
    stuck = [r for r in rows if r["plateau"] == "yes"]
    warning = (f"**Warning: {len(stuck)} of {len(rows) - 1} pretrained variants ended on SwAV's "
               f"plateau** (`plateau`: last-epoch SwAV loss within {runs.PLATEAU_NATS} of "
               "ln K, the loss of uniform predictions): they did not learn, and their differences "
               "say nothing about the add-on.\n\n") if stuck else ""
    missing = [v for v in VARIANTS if v not in {r["variant"] for r in rows}]
    if missing:
        warning += (f"**Not run yet: {', '.join(f'`{v}`' for v in missing)}** (`python3 -m "
                    f"benchmarks ablations --profile {profile_name}` resumes).\n\n")
    text = warning + (
        f"One seed ({seed}) per variant: a difference smaller than the seed noise of the "
        "accuracy table (`accuracy.md`: std over its seeds) is not a finding. Every "
        f"variant is the `{profile_name}` accuracy profile (same data, resolution, epochs, "
        "batch, optimizer, evaluation) with the one `method_kwargs` override shown; "
        "`swav_scaca (default)` is prototype pairing, ca_weight 1, no partner term. "
        "`random init`: the host's ResNet-18 initialisation under the same seed, not "
        "pretrained (what pretraining adds). `d_*`: difference to `swav` in points. `source`: "
        "the result file (the `swav` and default rows reuse the accuracy suite's runs of the "
        "same seed and settings). Accuracies in %; `s_per_step` in seconds of wall clock "
        "including start-up, not an overhead measure (other work may have shared the machine; "
        "the overhead benchmark measures that, interleaved)."
    )
    paths = {"table": write_table("ablations", f"Ablations of swav_scaca ({profile_name})", rows,
                                  COLUMNS, meta, text, profile_dir)}
    png = plot(rows, profile_dir / "ablations.png",
               f"Ablations, CIFAR-10 test, {profile_name} profile, seed {seed}")
    if png is not None:
        paths["plot"] = png
    return paths


def rebuild_tables(profile_dir: Path) -> Optional[Dict[str, Path]]:
    """The table of a profile folder rebuilt from its run files (``report``); None without
    ablation run files."""
    files = sorted((profile_dir / RUNS_DIR).glob("*.json"))
    if not files:
        return None
    first = json.loads(files[0].read_text())
    settings = first.get("base_settings", first["settings"])
    return write_tables(first["profile"], profiles.profile_from_settings(settings, ""), profile_dir,
                        first["seed"])


def main(argv=None) -> Dict[str, Path]:
    """Command-line entry point (also ``python3 -m benchmarks ablations``)."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks ablations", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=list(profiles.PROFILES["accuracy"]), default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        metavar="VARIANT", help=f"default: all of {list(VARIANTS)}")
    add_data_arguments(parser, data.DEFAULT_WORK_DIR)
    args = parser.parse_args(argv)
    cifar_dir = args.cifar_dir or data.shared_data_dir() / "cifar10"
    return run_suite(args.profile, profiles.PROFILES["accuracy"][args.profile], args.out,
                     args.data_root.expanduser(), cifar_dir, args.work_dir.expanduser(),
                     args.seed, args.variants)


if __name__ == "__main__":
    main()
