"""The controls campaign's tables and plot, from its run files alone."""

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from benchmarks import stats
from benchmarks.common import write_table
from benchmarks.profiles import PROFILES, Profile, profile_from_settings
from benchmarks.runs import RUN_NOTES, learning_check
from benchmarks.control_variants import (
    MECHANISM,
    RANDOM_INIT,
    RUNS_DIR,
    SWAV,
    UNIFORM,
    VARIANTS,
)

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
            mean, std = stats.mean_std(values)
            row[short] = f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")
            row[f"{short}_mean"], row[f"{short}_std"] = mean, std if std is not None else ""
            for ref, col in ((SWAV, "vs_swav"), (UNIFORM, "vs_uniform")):
                if name in (ref, RANDOM_INIT) or ref not in by_variant:
                    continue
                test = stats.pooled_ttest(values, [r[key] for r in by_variant[ref]])
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


def notes(profile_name: str, profile: Profile, rows: List[Dict[str, Any]]) -> str:
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
    known = PROFILES["controls"].get(name)
    profile = profile_from_settings(runs[0]["base_settings"], known.why if known else "")
    for run in runs:
        run.update(learning_check(run.get("swav_loss_per_epoch", []),
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
                            RUN_COLUMNS, meta, RUN_NOTES, profile_dir),
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
