"""One command for every benchmark, and the results README.

    python3 -m benchmarks accuracy --profile cpu     # any benchmark of BENCHMARKS, a profile
    python3 -m benchmarks overhead --profile tiny
    python3 -m benchmarks report                     # benchmarks/results/README.md from the files
    python3 -m benchmarks list

Options after the profile go to the benchmark (``python3 -m benchmarks accuracy --profile cpu
--data-root DIR``); ``--out DIR`` sets the results folder (default ``benchmarks/results``), whose
``<profile>/`` subfolder gets the benchmark's files. Progress is printed as the benchmark goes;
a benchmark that keeps one result file per run (``accuracy``) resumes an interrupted suite:
runs whose file exists are not redone. Every invocation ends by regenerating the README.
"""

import argparse
import dataclasses
import datetime
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from benchmarks.common import RESULTS, commit

PROFILES = ("cpu", "gpu", "tiny")


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: ``run(profile, out_dir, extra_argv)`` writes its tables (and
    plots) under ``out_dir`` (the profile's folder)."""

    run: Callable[[str, Path, List[str]], None]
    help: str
    # rebuilds the tables of a profile folder from its per-run result files (for ``report``)
    rebuild: Optional[Callable[[Path], object]] = None


def _accuracy(profile: str, out_dir: Path, extra: List[str]) -> None:
    from benchmarks import accuracy

    accuracy.main(["--profile", profile, "--out", str(out_dir.parent), *extra])


def _accuracy_rebuild(profile_dir: Path) -> None:
    from benchmarks import accuracy

    accuracy.rebuild_tables(profile_dir)


def _overhead(profile: str, out_dir: Path, extra: List[str]) -> None:
    from benchmarks import overhead

    # overhead.py measures on whatever device there is; tiny = its --tiny sizes (CI)
    overhead.main([*(["--tiny"] if profile == "tiny" else []), "--out", str(out_dir), *extra])


def _cam(profile: str, out_dir: Path, extra: List[str]) -> None:
    from benchmarks import cam

    # the profile's accuracy runs give the checkpoints; tiny makes its own
    source = ["--tiny"] if profile == "tiny" else ["--from-runs", str(out_dir / "runs")]
    cam.main([*source, "--out", str(out_dir), *extra])


def _ablations(profile: str, out_dir: Path, extra: List[str]) -> None:
    from benchmarks import ablations

    ablations.main(["--profile", profile, "--out", str(out_dir.parent), *extra])


def _ablations_rebuild(profile_dir: Path) -> None:
    from benchmarks import ablations

    ablations.rebuild_tables(profile_dir)


def _controls(profile: str, out_dir: Path, extra: List[str]) -> None:
    from benchmarks import controls

    controls.main(["--profile", profile, "--out", str(out_dir.parent), *extra])


def _controls_rebuild(profile_dir: Path) -> None:
    from benchmarks import controls_tables

    controls_tables.rebuild_tables(profile_dir)


def _methods(profile: str, out_dir: Path, extra: List[str]) -> None:
    from benchmarks import methods

    methods.main(["--profile", profile, "--out", str(out_dir.parent), *extra])


def _methods_rebuild(profile_dir: Path) -> None:
    from benchmarks import methods

    methods.rebuild_table(profile_dir)


def _attention(profile: str, out_dir: Path, extra: List[str]) -> None:
    from benchmarks import attention

    attention.main(["--profile", profile, "--out", str(out_dir.parent), *extra])


def _attention_rebuild(profile_dir: Path) -> None:
    from benchmarks import attention

    attention.rebuild_tables(profile_dir)


def _clutter(profile: str, out_dir: Path, extra: List[str]) -> None:
    from benchmarks import clutter

    clutter.main(["--profile", profile, "--out", str(out_dir.parent), *extra])


def _clutter_rebuild(profile_dir: Path) -> None:
    from benchmarks import clutter

    if (profile_dir / clutter.RUNS_DIR).is_dir() and profile_dir.name in clutter.PROFILES:
        clutter.write_tables(profile_dir, clutter.PROFILES[profile_dir.name])


def _incentive(profile: str, out_dir: Path, extra: List[str]) -> None:
    from benchmarks import incentive

    incentive.main(["--profile", profile, "--out", str(out_dir.parent), *extra])


# name -> benchmark. To add one: write benchmarks/<name>.py with a
# ``main(argv)`` that takes ``--profile`` (or a mapping like _overhead's) and writes its tables
# with benchmarks.common.write_table under the given folder, then register it here.
BENCHMARKS: Dict[str, Benchmark] = {
    "clutter": Benchmark(_clutter, "swav, swav_scaca, its uniform control and LEWEL on "
                         "cifar10-clutter: accuracy, mask-in-box, MaxBoxAcc", _clutter_rebuild),
    "incentive": Benchmark(_incentive, "does each CA objective prefer the object? (frozen "
                           "swav checkpoint, forward passes)"),
    "accuracy": Benchmark(_accuracy, "k-NN and linear top-1 on CIFAR-10, swav_scaca vs swav",
                          _accuracy_rebuild),
    "overhead": Benchmark(_overhead, "training-step time and memory of the add-on"),
    "cam": Benchmark(_cam, "CAM localization (MaxBoxAcc) of the accuracy runs' checkpoints"),
    "ablations": Benchmark(_ablations, "pairing mode, CA weight and partner term, one seed each",
                           _ablations_rebuild),
    "controls": Benchmark(_controls, "swav_scaca against swav and the extra-loss control "
                          "(ca_mask=uniform), with seeds and mechanism metrics, 8x8 map",
                          _controls_rebuild),
    "attention": Benchmark(_attention, "candidate CA settings for a mask that attends, with "
                           "the mechanism metrics (runs of the controls campaign)",
                           _attention_rebuild),
    "methods": Benchmark(_methods, "the add-on on every host method (deepclusterv2, dino, "
                         "byol, simclr, swav) against the host's method, one seed",
                         _methods_rebuild),
}


def _demote(markdown: str) -> str:
    """A table file's Markdown with its headings one level down."""
    return "\n".join("#" + line if line.startswith("#") else line
                     for line in markdown.splitlines())


def report(out: Path = RESULTS) -> Path:
    """Writes ``out/README.md``: every table (``*.md``, with its machine, date, commit and
    command) and every plot (``*.png``) found under ``out``, by folder. The tables of a folder
    with per-run result files are first rebuilt from those files."""
    out = Path(out)
    for profile_dir in sorted(p for p in out.glob("*") if p.is_dir()):
        for bench in BENCHMARKS.values():
            if bench.rebuild is not None:
                bench.rebuild(profile_dir)
    folders = sorted({p.parent for p in out.rglob("*.md") if p.name != "README.md"}
                     | {p.parent for p in out.rglob("*.png")})
    folders = [f for f in folders
               if not any(part.endswith("runs") for part in f.relative_to(out).parts)]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md = [
        "# Benchmark results",
        "",
        f"Generated by `python3 -m benchmarks report` on {now} at commit {commit()} from the "
        "result files below; each table states the machine, date, commit and command that "
        "produced it. Nothing here is typed in: rerun a benchmark with "
        "`python3 -m benchmarks <name> --profile <cpu|gpu|tiny>`.",
        "",
        f"Benchmarks: {', '.join(f'`{n}` ({b.help})' for n, b in BENCHMARKS.items())}.",
        "",
    ]
    if not folders:
        md += ["No results yet.", ""]
    for folder in folders:
        rel = folder.relative_to(out)
        md += [f"## {rel.as_posix() if str(rel) != '.' else 'results'}", ""]
        for table in sorted(folder.glob("*.md")):
            if table.name == "README.md":
                continue
            md += [_demote(table.read_text()).strip(), ""]
            csv = table.with_suffix(".csv")
            if csv.exists():
                md += [f"Data: [{csv.relative_to(out).as_posix()}]"
                       f"({csv.relative_to(out).as_posix()})", ""]
        for png in sorted(folder.glob("*.png")):
            link = png.relative_to(out).as_posix()
            md += [f"![{link}]({link})", ""]
        for runs in sorted(p for p in folder.glob("*runs") if p.is_dir()):
            n = len(list(runs.glob("*.json")))
            md += [f"Per-run result files: `{runs.relative_to(out).as_posix()}/` ({n}).", ""]
    path = out / "README.md"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(md))
    return path


def main(argv: Sequence[str] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = [*BENCHMARKS, "report", "list"]
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=names)
    parser.add_argument("--profile", choices=PROFILES, default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="results folder (default benchmarks/results)")
    args, extra = parser.parse_known_args(argv)
    if args.name == "list":
        for name, bench in BENCHMARKS.items():
            print(f"{name}: {bench.help}")
        return
    if args.name != "report":
        # the commit is read once, now: the run files name the code this process runs
        print(f"[benchmarks] {args.name} --profile {args.profile} -> {args.out / args.profile} "
              f"(commit {commit()})", flush=True)
        BENCHMARKS[args.name].run(args.profile, args.out / args.profile, extra)
    elif extra:
        parser.error(f"report takes no options besides --out: {extra}")
    path = report(args.out)
    print(f"[benchmarks] report: {path}", flush=True)


if __name__ == "__main__":
    main()
