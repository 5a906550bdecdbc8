"""What every benchmark records beside its numbers, and how it writes its tables."""

import csv
import functools
import datetime
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence

import torch

RESULTS = Path(__file__).parent / "results"
PACKAGES = ("solo-learn", "solo-scaca", "torch", "torchvision", "lightning", "torchmetrics")


def machine() -> str:
    """CPU model, cores and GPU (if any) of this machine."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [l.split(":", 1)[1].strip() for l in cpuinfo.read_text().splitlines()
                 if l.startswith("model name")]
        cpu = names[0] if names else cpu
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return f"{cpu}, {os.cpu_count()} cores, GPU: {gpu}"


@functools.lru_cache(maxsize=None)
def commit() -> str:
    """The project's git commit (with a mark when the tree has uncommitted changes) when this
    process first asked: the code a long benchmark process runs, even if commits land while it
    runs."""
    if os.environ.get("SOLO_SCACA_COMMIT"):  # a copy whose .git is absent or stale (a device)
        return os.environ["SOLO_SCACA_COMMIT"]
    root = Path(__file__).parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "solo_scaca", "benchmarks",
             ":(exclude)benchmarks/results"],
            cwd=root, text=True, capture_output=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def metadata(extra: Dict[str, Any] = None) -> Dict[str, Any]:
    """Command, commit, machine, library versions and date of a benchmark run."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {
        "command": shlex.join(getattr(sys, "orig_argv", sys.argv)),
        "commit": commit(),
        "machine": machine(),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        **(extra or {}),
    }


def markdown_table(rows: Sequence[Dict[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` (dicts) with the given column order."""
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_table(name: str, title: str, rows: List[Dict[str, Any]], columns: Sequence[str],
                meta: Dict[str, Any], notes: str = "", out_dir: Path = RESULTS) -> Path:
    """Writes ``<name>.csv`` and ``<name>.md`` (metadata, notes, table) under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / f"{name}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    md = [f"# {title}", ""]
    md += [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in meta.items()]
    md += ["", notes.strip(), "", markdown_table(rows, columns), ""] if notes else [
        "", markdown_table(rows, columns), ""]
    (out_dir / f"{name}.md").write_text("\n".join(md))
    return out_dir / f"{name}.md"
