"""The add-on on every host method: ``<method>_scaca`` against the host's ``<method>`` at equal
budget, one seed (docs/method.md section 9).

    python3 -m benchmarks methods --profile cpu     # hours on 2 CPU cores
    python3 -m benchmarks methods --profile tiny    # seconds: what CI runs

Each pair is pretrained from the method's shipped drop-in config
(``scripts/pretrain/cifar/<method>_scaca.yaml``: the host's settings for that method, plus the
CA keys) on the controls' data (``PROFILES["controls"]`` of ``benchmarks/profiles.py``), with
the profile's backbone, crop size, batch, epochs, warm-up and milder augmentation (every
pipeline), and evaluated as every benchmark is (k-NN 20/200, the host's linear model). Where
the host's config does not fit the budget it is changed for both arms alike: the profile's
number of prototypes (SwAV, DeepClusterV2's three sets, DINO) and momentum ``base_tau`` 0.99
(BYOL, DINO: the host's 0.9995 barely moves the teacher in a few hundred steps). SwAV's row
uses the profile's SwAV settings (its lr, no queue, prototypes frozen for one epoch). Result
files resume as in ``controls``; writes ``methods.md/.csv``.
"""

import csv
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from benchmarks import profiles, runs
from benchmarks.campaign import (
    RANDOM_INIT,
    campaign_parser,
    config_of,
    data_and_random_init,
    method_overrides,
    parse_campaign,
    run_file_of,
    run_parallel,
)
from benchmarks.control_variants import CURVES
from benchmarks.profiles import PROFILES

HOST_METHODS = ("swav", "deepclusterv2", "dino", "byol", "simclr")
RUNS_DIR = "method_runs"
# host methods whose own class fails on a single GPU: the host's DeepClusterV2 indexes its CPU
# k-means assignments with a GPU index from epoch 1 on (solo-learn 1.0.6, utils/kmeans.py,
# single-process path). Their baseline arm is ``<method>_scaca`` with ``ca_weight=0``: exactly
# the host's method (tests/test_scaca_methods.py), with that fix.
BASELINE_AS_CA_WEIGHT_0 = ("deepclusterv2",)


def run_suite(profile_name: str, profile: profiles.Profile, out: Path, data_root: Path,
              cifar_dir: Path, work_dir: Path, hosts: Sequence[str], seed: int,
              only: Sequence[str] = (), jobs: int = 1, child_argv: Sequence[str] = (),
              tables: bool = True) -> Optional[Path]:
    """Runs the missing (method, seed) runs (``only``: just these), ``jobs`` at a time, then
    writes the table."""
    runs_dir = out / profile_name / RUNS_DIR
    methods = [m for h in hosts for m in (h, f"{h}_scaca")]
    pending = [m for m in (list(only) or methods) if not run_file_of(runs_dir, m, seed).exists()]
    paths = data_and_random_init("methods", profile_name, profile, seed, runs_dir,
                                 bool(pending), not only, data_root, cifar_dir, work_dir,
                                 {"method": RANDOM_INIT})
    if jobs > 1 and len(pending) > 1:
        print(f"[methods] {len(pending)} runs, {jobs} at a time as separate processes",
              flush=True)
        run_parallel([(m, seed) for m in pending], jobs, list(child_argv), work_dir / "logs",
                     module="benchmarks.methods")
        pending = []
    for method in pending:
        host = method.removesuffix("_scaca")
        overrides = method_overrides(profile, host)
        runs_as, folder = method, work_dir
        if method in BASELINE_AS_CA_WEIGHT_0:  # the host's class cannot run here: see above
            runs_as, folder = f"{method}_scaca", work_dir / "baseline"
            overrides = [*overrides, "method_kwargs.ca_weight=0"]
        print(f"[methods] {method} seed {seed}: start", flush=True)
        result = runs.run_one(
            profile_name, profile, runs_as, seed, *paths, folder,
            run_file_of(runs_dir, method, seed),
            {"benchmark": "methods", "host_method": host, "arm": method}, resume=True,
            curves=CURVES if method.endswith("_scaca") else (),
            config=config_of(host), base_overrides=overrides,
        )
        print(f"[methods] {method}: kNN-20 {result['knn20_top1']:.2f}%, kNN-200 "
              f"{result['knn200_top1']:.2f}%, linear {result['linear_top1']:.2f}% "
              f"({result['wall_s']:.0f} s)", flush=True)
    return write_table(out / profile_name, profile, hosts, seed) if tables else None


METRICS = ("knn20_top1", "knn200_top1", "linear_top1")


def write_table(profile_dir: Path, profile: profiles.Profile, hosts: Sequence[str],
                seed: int) -> Path:
    """``methods.md/.csv``: per host method, both arms, the difference, the mask's entropy."""
    runs_dir = profile_dir / RUNS_DIR

    def load(method: str) -> Optional[dict]:  # by arm (a baseline may run as ca_weight=0)
        path = run_file_of(runs_dir, method, seed)
        return json.loads(path.read_text()) if path.exists() else None

    rows: List[Dict[str, str]] = []
    for host in hosts:
        base, scaca = load(host), load(f"{host}_scaca")
        row = {"method": host}
        for key in METRICS:
            a, b = (None if r is None else r[key] for r in (base, scaca))
            row[f"host_{key}"] = "" if a is None else f"{a:.2f}"
            row[f"scaca_{key}"] = "" if b is None else f"{b:.2f}"
            row[f"delta_{key}"] = "" if None in (a, b) else f"{b - a:+.2f}"
        entropy = (scaca or {}).get("train_ca_mask_entropy_per_epoch") or []
        row["mask_entropy_last"] = f"{entropy[-1]:.3f}" if entropy else ""
        row["s_per_step_ratio"] = ("" if None in (base, scaca)
                                   else f"{scaca['s_per_step'] / base['s_per_step']:.2f}")
        row["device"] = (scaca or base or {}).get("device", "")
        rows.append(row)
    with (profile_dir / "methods.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    random = load(RANDOM_INIT)
    measured = [r for r in map(load, [m for h in hosts for m in (h, f"{h}_scaca")]) if r]
    commits = sorted({str(r.get("commit", "?")) for r in measured})
    profile_name = measured[0]["profile"] if measured else profile_dir.name
    lines = [
        f"# The add-on on every host method ({profile_name} profile, seed {seed})", "",
        f"{profile.why}", "",
        "That is swav's setting (the controls' runs); every other method starts from its shipped "
        "`scripts/pretrain/cifar/<method>_scaca.yaml` (the host's lr, heads and augmentation "
        "pipelines) with the profile's backbone, crop size, batch, epochs, warm-up, milder "
        "augmentation on every pipeline and number of prototypes, and momentum base_tau 0.99 "
        "(BYOL, DINO), the same for both arms.", "",
        "One seed per arm: differences under about 1 point (kNN-20) are within the seed-to-seed "
        "spread the controls measured for swav (std 0.7-1.0). `<method>` is the host's method, "
        "`+CA` the same run with the add-on (`<method>_scaca`, every CA key at its default); "
        "mask entropy 1.0 = a uniform mask. Command: `python3 -m benchmarks methods --profile "
        f"{profile_name}`. Commit of the runs: {'; '.join(commits)}.", "",
        "| method | kNN-20 | +CA | delta | kNN-200 | +CA | delta | linear | +CA | delta | "
        "mask entropy | step-time ratio (wall) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["method"]]
        for key in METRICS:
            cells += [r[f"host_{key}"], r[f"scaca_{key}"], r[f"delta_{key}"]]
        lines.append("| " + " | ".join(cells + [r["mask_entropy_last"], r["s_per_step_ratio"]])
                     + " |")
    if random is not None:
        lines += ["", f"Random init: kNN-20 {random['knn20_top1']:.2f}, kNN-200 "
                      f"{random['knn200_top1']:.2f}, linear {random['linear_top1']:.2f}."]
    lines += ["", "deepclusterv2's baseline arm is `deepclusterv2_scaca` with `ca_weight=0` (exactly "
              "the host's method, tested): the host's own class fails on a single GPU from "
              "epoch 1 (its k-means indexes CPU assignments with a GPU index). Its CA term "
              "starts at epoch 1 (no k-means assignments before)."]
    lines += ["", f"Device: {rows[0]['device'] or '?'}. The step-time ratio is wall clock of "
              "runs that shared the machine: see the overhead benchmark for timings."]
    path = profile_dir / "methods.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"[methods] wrote {path}", flush=True)
    return path


def rebuild_table(profile_dir: Path) -> Optional[Path]:
    """Rewrites ``methods.md/.csv`` from the result files of a folder (if it has any)."""
    files = sorted((profile_dir / RUNS_DIR).glob("*.json"))
    results = [json.loads(p.read_text()) for p in files]
    results = [r for r in results if r.get("method") != RANDOM_INIT]
    if not results:
        return None
    measured = {r.get("host_method") for r in results}
    return write_table(profile_dir, PROFILES["controls"][results[0]["profile"]],
                       [h for h in HOST_METHODS if h in measured], results[0]["seed"])


def main(argv=None) -> Optional[Path]:
    """Command-line entry point (also ``python3 -m benchmarks methods``)."""
    parser = campaign_parser("methods", __doc__, "controls")
    parser.add_argument("--methods", nargs="+", choices=HOST_METHODS, default=list(HOST_METHODS))
    parser.add_argument("--seed", type=int, default=None, help="default: the profile's first")
    known = [m for h in HOST_METHODS for m in (h, f"{h}_scaca")]
    request = parse_campaign(parser, argv, "methods", "controls", known, "METHOD")
    seed = request.profile.seeds[0] if request.args.seed is None else request.args.seed
    if any(given != seed for _, given in request.only):
        parser.error(f"--only takes METHOD@{seed} with METHOD one of {known}, "
                     f"got {request.args.only}")
    return run_suite(*request.where(), request.args.methods, seed,
                     only=[method for method, _ in request.only],
                     **request.how("--seed", str(seed)))


if __name__ == "__main__":
    main()
