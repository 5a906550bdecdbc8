"""Which CA settings give a mask that attends? One row per candidate of the controls campaign
(``benchmarks/controls_runs.py``, same profile, data, seed and evaluation): the mechanism metrics of
the last epoch, whether the mask is alive, and the accuracies against ``swav`` and the
extra-loss control ``ca_mask=uniform`` of the same seed.

    python3 -m benchmarks attention --profile cpu    # runs the missing candidates (seed 0)

Alive: entropy <= 0.9 of ln HW (it attends) and partner sensitivity >= half of the
mask's L1 distance to uniform (what it attends to depends on the partner). The runs are the
controls campaign's own result files (``control_runs/``): a candidate run here is a row of
``controls.md`` too. Writes ``attention.md/.csv``.
"""

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional

from benchmarks import control_variants, data
from benchmarks.campaign import add_data_arguments
from benchmarks.controls_runs import run_suite
from benchmarks.controls_tables import last, load_runs
from benchmarks.common import RESULTS, write_table
from benchmarks.profiles import PROFILES

# the rows of the table, in order: references, then the candidates
REFERENCES = (control_variants.RANDOM_INIT, control_variants.SWAV, control_variants.UNIFORM)
CANDIDATES = ("swav_scaca (default)", "ca_keys=features", "ca_response=mean",
              "ca_response=contrast", "ca_mask_temperature=0.02",
              "ca_keys=features, ca_response=mean",
              "ca_keys=features, ca_mask_temperature=0.02", "ca_partner_weight=1.0")
MAX_ENTROPY = 0.9
MIN_SENSITIVITY_SHARE = 0.5
COLUMNS = ["variant", "seed", "entropy", "peak", "to_uniform", "sensitivity", "sensitivity_share",
           "same_proto", "same_class", "alive", "knn20_top1", "knn200_top1", "linear_top1",
           "d_knn20_swav", "d_knn20_uniform", "d_linear_swav", "d_linear_uniform"]


def alive(entropy: Optional[float], sensitivity: Optional[float],
          to_uniform: Optional[float]) -> str:
    """``yes`` when the mask attends and depends on its partner (see the module's doc)."""
    if entropy is None or sensitivity is None or not to_uniform:
        return "n/a"
    ok = entropy <= MAX_ENTROPY and sensitivity >= MIN_SENSITIVITY_SHARE * to_uniform
    return "yes" if ok else "no"


def rows_of(runs: List[Dict[str, Any]], seed: int) -> List[Dict[str, Any]]:
    by_variant = {r["variant"]: r for r in runs
                  if r["seed"] == seed or r["variant"] == control_variants.RANDOM_INIT}
    refs = {v: by_variant.get(v) for v in (control_variants.SWAV, control_variants.UNIFORM)}
    rows = []
    for variant in (*REFERENCES, *CANDIDATES):
        run = by_variant.get(variant)
        if run is None:
            continue
        row: Dict[str, Any] = {"variant": variant, "seed": run["seed"]}
        for key, short in control_variants.MECHANISM:
            row[short] = last(run, key)
        if row["sensitivity"] is not None and row["to_uniform"]:
            row["sensitivity_share"] = row["sensitivity"] / row["to_uniform"]
        row["alive"] = alive(row["entropy"], row["sensitivity"], row["to_uniform"])
        for key in ("knn20_top1", "knn200_top1", "linear_top1"):
            row[key] = run[key]
        for key, short in (("knn20_top1", "knn20"), ("linear_top1", "linear")):
            for ref, name in ((control_variants.SWAV, "swav"), (control_variants.UNIFORM, "uniform")):
                if refs[ref] is not None and variant not in REFERENCES:
                    row[f"d_{short}_{name}"] = run[key] - refs[ref][key]
        rows.append({k: ("" if v is None else v) for k, v in row.items()})
    return rows


def write_tables(profile_dir: Path, seed: int = 0) -> Optional[Path]:
    runs = load_runs(profile_dir)
    rows = rows_of(runs, seed)
    if not any(r["variant"] in CANDIDATES for r in rows):
        return None
    mine = [r for r in runs if r["variant"] in CANDIDATES]
    latest = max(mine, key=lambda r: r["date"])  # the newest candidate run names the code
    meta = {k: latest[k] for k in ("command", "commit", "machine", "versions", "date")}
    missing = [v for v in CANDIDATES if v not in {r["variant"] for r in rows}]
    text = ((f"**Not run yet:** {', '.join(f'`{v}`' for v in missing)} (`python3 -m "
             f"benchmarks attention --profile {runs[0]['profile']}` resumes).\n\n")
            if missing else "") + (
        f"Seed {seed}, one run per candidate, the controls campaign's profile and result files "
        "(`controls.md` has the profile). Mechanism metrics of the last epoch, as in "
        "`controls.md`. `sensitivity_share` = sensitivity / to_uniform: the part of the "
        f"mask's departure from uniform that changes with the partner. `alive` = yes when "
        f"entropy <= {MAX_ENTROPY} and sensitivity_share >= {MIN_SENSITIVITY_SHARE}. `d_*`: "
        "this run minus `swav` / `ca_mask=uniform` of the same seed, in points; one seed, so a "
        "difference within the seed noise of `controls.md` is not a finding.")
    return write_table("attention", f"Candidates for a mask that attends "
                       f"({runs[0]['profile']})", rows, COLUMNS, meta, text, profile_dir)


def rebuild_tables(profile_dir: Path) -> Optional[Path]:
    return write_tables(profile_dir)


def main(argv=None) -> Optional[Path]:
    """Command-line entry point (also ``python3 -m benchmarks attention``)."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks attention", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=list(PROFILES["controls"]), default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--seed", type=int, default=0)
    add_data_arguments(parser, data.DEFAULT_WORK_DIR / "controls")
    args = parser.parse_args(argv)
    cifar_dir = args.cifar_dir or data.shared_data_dir() / "cifar10"
    pairs = [(v, args.seed) for v in (control_variants.SWAV, control_variants.UNIFORM, *CANDIDATES)]
    run_suite(args.profile, PROFILES["controls"][args.profile], args.out,
              args.data_root.expanduser(), cifar_dir, args.work_dir.expanduser(),
              list(control_variants.VARIANTS), only=pairs)
    return write_tables(args.out / args.profile, args.seed)


if __name__ == "__main__":
    main()
