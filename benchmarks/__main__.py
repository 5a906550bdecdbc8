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
import importlib
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from benchmarks.common import RESULTS, commit

PROFILE_NAMES = ("cpu", "gpu", "tiny")


def _profile_argv(profile: str, out_dir: Path, extra: List[str]) -> List[str]:
    """A benchmark's own options: its profile and the results folder (it adds the profile)."""
    return ["--profile", profile, "--out", str(out_dir.parent), *extra]


def _overhead_argv(profile: str, out_dir: Path, extra: List[str]) -> List[str]:
    # overhead.py measures on whatever device there is; tiny = its --tiny sizes (CI)
    return [*(["--tiny"] if profile == "tiny" else []), "--out", str(out_dir), *extra]


def _cam_argv(profile: str, out_dir: Path, extra: List[str]) -> List[str]:
    # the profile's accuracy runs give the checkpoints; tiny makes its own
    source = ["--tiny"] if profile == "tiny" else ["--from-runs", str(out_dir / "runs")]
    return [*source, "--out", str(out_dir), *extra]


def _device_argv(profile: str, out_dir: Path, extra: List[str]) -> List[str]:
    # device takes no profile (``main`` passes its options through): --tiny for CI sizes
    return [*(["--tiny"] if profile == "tiny" else []), "--out", str(out_dir), *extra]


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: the module ``benchmarks/<name>.py`` whose ``main(argv)`` writes
    its tables (and plots) under the profile's folder."""

    help: str
    # ``module.function`` (under benchmarks) that rebuilds the tables of a profile folder from
    # its per-run result files (for ``report``)
    rebuild: Optional[str] = None
    # the argv of the module's ``main`` for (profile, profile folder, options after it)
    argv: Callable[[str, Path, List[str]], List[str]] = _profile_argv


def _function(dotted: str) -> Callable:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(f"benchmarks.{module}"), name)


# name -> benchmark. To add one: write benchmarks/<name>.py with a ``main(argv)`` that takes
# ``--profile`` and ``--out`` (or give it an ``argv`` mapping like overhead's) and writes its
# tables with benchmarks.common.write_table under the given folder, then register it here.
# A benchmark imports shared helpers (campaign, runs, data, profiles, ...), never another one.
BENCHMARKS: Dict[str, Benchmark] = {
    "clutter": Benchmark("swav, swav_scaca, its uniform control and LEWEL on cifar10-clutter: "
                         "accuracy, mask-in-box, MaxBoxAcc", "clutter.rebuild_tables"),
    "incentive": Benchmark("does each CA objective prefer the object? (frozen swav checkpoint, "
                           "forward passes)"),
    "accuracy": Benchmark("k-NN and linear top-1 on CIFAR-10, swav_scaca vs swav",
                          "accuracy.rebuild_tables"),
    "overhead": Benchmark("training-step time and memory of the add-on", argv=_overhead_argv),
    "ops": Benchmark("aten ops the add-on dispatches per training step, every host method"),
    "cam": Benchmark("CAM localization (MaxBoxAcc) of the accuracy runs' checkpoints",
                     argv=_cam_argv),
    "ablations": Benchmark("pairing mode, CA weight and partner term, one seed each",
                           "ablations.rebuild_tables"),
    "controls": Benchmark("swav_scaca against swav and the extra-loss control "
                          "(ca_mask=uniform), with seeds and mechanism metrics, 8x8 map",
                          "controls_tables.rebuild_tables"),
    "attention": Benchmark("candidate CA settings for a mask that attends, with the mechanism "
                           "metrics (runs of the controls campaign)", "attention.rebuild_tables"),
    "methods": Benchmark("the add-on on every host method (deepclusterv2, dino, byol, simclr, "
                         "swav) against the host's method, one seed", "methods.rebuild_table"),
    "device": Benchmark("one device call under a deadline: DALI against torchvision, the "
                        "GPU overhead, a clutter and CIFAR-10 campaign (its own options: "
                        "python3 -m benchmarks device --help)", argv=_device_argv),
}


def run(name: str, profile: str, out_dir: Path, extra: List[str]) -> None:
    """Runs benchmark ``name`` with ``profile``, its files under ``out_dir``."""
    module = importlib.import_module(f"benchmarks.{name}")
    module.main(BENCHMARKS[name].argv(profile, out_dir, extra))


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
                _function(bench.rebuild)(profile_dir)
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
    if argv[:1] == ["device"]:  # its own options (--help, --prepare, --deadline), no report
        from benchmarks import device

        raise SystemExit(device.main(argv[1:]))
    names = [*BENCHMARKS, "report", "list"]
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=names)
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="cpu")
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
        run(args.name, args.profile, args.out / args.profile, extra)
        if "--pending" in extra:  # a question about what is left: no result changed
            return
    elif extra:
        parser.error(f"report takes no options besides --out: {extra}")
    path = report(args.out)
    print(f"[benchmarks] report: {path}", flush=True)


if __name__ == "__main__":
    main()
