"""The controls campaign's runs: which (variant, seed) pairs, each pretrained and evaluated as
the accuracy benchmark does, side by side or one after the other, then the tables
(``benchmarks/controls.py`` is its command; ``benchmarks/attention.py`` runs its candidates)."""

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from benchmarks import profiles, runs
from benchmarks.campaign import (
    check_settings,
    data_and_random_init,
    run_file_of,
    run_parallel,
    slug,
)
from benchmarks.control_variants import CURVES, RANDOM_INIT, RUNS_DIR, VARIANTS
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
    check_settings(runs_dir, settings, profile_name,
                   f"delete {runs_dir} (or pass another --out)")
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
    own pairs and masks on 64 test images (``runs.draw_masks``)."""
    drawn = []
    scaca_runs = sorted((r for r in load_runs(profile_dir) if r.get("method") == "swav_scaca"),
                        key=lambda r: r["seed"])
    for variant in VARIANTS:
        run = next((r for r in scaca_runs if r["variant"] == variant), None)
        out = profile_dir / f"masks-{slug(variant)}.png"
        if run is not None and runs.draw_masks(
                run, run_file_of(profile_dir / RUNS_DIR, variant, run["seed"]), out,
                "controls", rows):
            drawn.append(out)
    return drawn
