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
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from benchmarks import data, profiles, runs
from benchmarks.ablations import run_random_init, slug
from benchmarks.common import RESULTS
from benchmarks.control_variants import (
    CURVES,
    PROFILES,
    RANDOM_INIT,
    RUNS_DIR,
    VARIANTS,
)
from benchmarks.controls_tables import load_runs, write_tables

def plan(profile: profiles.Profile, variants: Sequence[str],
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


def _raise_interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_parallel(pending: List[Tuple[str, int]], jobs: int, child_argv: List[str],
                 log_dir: Path, module: str = "benchmarks.controls") -> None:
    """Runs each (variant, seed) as its own process (``python3 -m <module> ... --only
    VARIANT@SEED``), ``jobs`` at a time: side by
    side on one GPU. Each writes its own result file; a failed run is said, not fatal. An
    interrupt (Ctrl-C, SIGINT or SIGTERM, e.g. from ``timeout``) stops the running children
    (SIGTERM, then SIGKILL after 30 s) and starts no more."""
    import signal
    import subprocess
    import sys
    import threading
    from concurrent.futures import ThreadPoolExecutor

    log_dir.mkdir(parents=True, exist_ok=True)
    children: List[subprocess.Popen] = []
    stop, lock = threading.Event(), threading.Lock()

    def one(pair: Tuple[str, int]) -> Tuple[str, int, int, Path]:
        variant, seed = pair
        log = log_dir / f"{slug(variant)}-seed{seed}.log"
        with log.open("w") as f:
            with lock:  # no child starts once the interrupt has been handled
                if stop.is_set():
                    return variant, seed, -1, log
                child = subprocess.Popen(
                    [sys.executable, "-m", module, *child_argv, "--only",
                     f"{variant}@{seed}", "--no-tables"],
                    stdout=f, stderr=subprocess.STDOUT,
                    cwd=Path(__file__).resolve().parent.parent)
                children.append(child)
            return variant, seed, child.wait(), log

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        for variant, seed, rc, log in pool.map(one, pending):
            state = "done" if rc == 0 else f"FAILED (exit {rc}), see {log}"
            print(f"[{module.rsplit('.', 1)[-1]}] {variant} seed {seed}: {state}", flush=True)
    except KeyboardInterrupt:
        with lock:
            stop.set()
            for child in children:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        signal.signal(signal.SIGTERM, previous)


def data_and_random_init(benchmark: str, profile_name: str, profile: profiles.Profile,
                         seed: int, runs_dir: Path, runs_pending: bool, random_init: bool,
                         data_root: Path, cifar_dir: Path, work_dir: Path,
                         fields: Dict[str, object]) -> Optional[Tuple[Path, Path]]:
    """The profile's data (train and test folders) when anything is left to run, and the
    random-init reference run file (``random_init``: evaluated if missing, with ``fields``)."""
    random_file = runs_dir / f"{slug(RANDOM_INIT)}-seed{seed}.json"
    paths = None
    if runs_pending or not random_file.exists():
        paths = data.profile_data(profile, data_root, cifar_dir)
    if not random_file.exists() and random_init:
        print(f"[{benchmark}] random init: evaluating", flush=True)
        result = run_random_init(profile_name, profile, seed, *paths, work_dir / "random-init",
                                 random_file)
        runs.write_run_file(random_file, {**result, "benchmark": benchmark, **fields})
    return paths


def run_suite(profile_name: str, profile: profiles.Profile, out: Path, data_root: Path,
              cifar_dir: Path, work_dir: Path, variants: Sequence[str],
              seeds: Optional[int] = None, only: Sequence[Tuple[str, int]] = (),
              jobs: int = 1, child_argv: Sequence[str] = (),
              tables: bool = True) -> Optional[Dict[str, Path]]:
    """Runs the missing (variant, seed) pairs (``only``: just these), ``jobs`` processes at a
    time, then writes the tables."""
    profile_dir = out / profile_name
    runs_dir = profile_dir / RUNS_DIR
    settings = profiles.settings_of(profile)
    for path in sorted(runs_dir.glob("*.json")):
        if not profiles.same_settings(json.loads(path.read_text())["base_settings"], settings):
            raise SystemExit(f"{path} was measured with other settings than profile "
                             f"{profile_name!r} has now: delete {runs_dir} (or pass another "
                             "--out) to start again")
    pending = [(v, s) for v, s in (list(only) or plan(profile, variants, seeds))
               if not run_file_of(runs_dir, v, s).exists()]
    paths = data_and_random_init(
        "controls", profile_name, profile, profile.seeds[0], runs_dir, bool(pending), not only,
        data_root, cifar_dir, work_dir, {"variant": RANDOM_INIT, "base_settings": settings})
    if jobs > 1 and len(pending) > 1:
        print(f"[controls] {len(pending)} runs, {jobs} at a time as separate processes",
              flush=True)
        run_parallel(pending, jobs, list(child_argv), work_dir / "logs")
        pending = []
    for i, (variant, seed) in enumerate(pending, 1):
        method, overrides, _ = VARIANTS[variant]
        print(f"[controls] {i}/{len(pending)} {variant} seed {seed}: start", flush=True)
        varied = dataclasses.replace(profile, hydra_overrides=profile.hydra_overrides + overrides)
        result = runs.run_one(
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


def add_campaign_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The profile, data and work-folder options of a campaign (controls, methods)."""
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of the profile (e.g. epochs=4); repeat")
    parser.add_argument("--data-root", type=Path, default=data.DEFAULT_DATA_ROOT)
    parser.add_argument("--cifar-dir", type=Path, default=None,
                        help="folder of CIFAR-10's train.tar.gz and test.tar.gz (default: "
                             "$SOLO_SCACA_SHARED_DATA/cifar10, else ../shared/data/cifar10)")
    parser.add_argument("--work-dir", type=Path, default=data.DEFAULT_WORK_DIR / name,
                        help="where the pretraining checkpoints go (outside the repository)")


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
    add_campaign_arguments(parser, "controls")
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
        profile = dataclasses.replace(profile, **profiles.parse_field(parser, profile, item))
    cifar_dir = args.cifar_dir or data.shared_data_dir() / "cifar10"
    child_argv = ["--profile", args.profile, "--out", str(args.out),
                  "--data-root", str(args.data_root), "--cifar-dir", str(cifar_dir),
                  "--work-dir", str(args.work_dir), *(f"--set={i}" for i in args.set)]
    return run_suite(args.profile, profile, args.out, args.data_root.expanduser(), cifar_dir,
                     args.work_dir.expanduser(), args.variants, args.seeds, only, args.jobs,
                     child_argv, not args.no_tables)


if __name__ == "__main__":
    main()
