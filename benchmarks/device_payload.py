"""What travels to the device machine for ``python3 -m benchmarks device``, built here once
(``python3 -m benchmarks device --prepare``) into the git-ignored folder ``.device/``, and how
the command installs it there, offline.

The device tool sends the working tree (tracked and untracked-not-ignored files) and at most 8
ignored paths, 64 MiB in all per call, to a machine that keeps its files only while it stays
warm (30 s after a call). So:

- ``.device/base/`` travels with the run call itself: wheels of the host (solo-learn, built from
  its checkout) and of the host stack versions this machine runs (lightning, torchmetrics,
  hydra-core, omegaconf, antlr4, timm, setuptools: the device's own differ), the CIFAR-10
  tarballs of the shared data (``../shared`` beside the repository does not travel), and
  ``MANIFEST.json``. About 27 MiB.
- NVIDIA DALI does not fit one call: ``nvidia-dali-cuda120`` 2.4.0 is 788 MiB installed
  (``libdali_operators.so`` alone 457 MiB, 302 MiB of it CUDA code for every GPU generation),
  about 235 MiB as ``tar.xz`` even for Python 3.12 alone without its C++ headers. It travels in
  *staging calls* before the run, each carrying one folder ``.device/calls/NN/`` of chunks under
  the limit; the machine keeps them while warm (in the repository copy, and copied to
  ``/tmp/solo-scaca-device/parts``). The run call reassembles each stream whose chunks are all
  there (sha256 checked) and says which are missing; without DALI the run still runs (its DALI
  rows say why not, the campaign reads with torchvision).
- The clutter set (``solo-scaca-clutter-data``, 500 training and 1000 test objects per class)
  is a second stream in the staging calls; without it the run generates it from the CIFAR-10
  tarballs (about half a minute of its deadline).

DALI's tree is taken from this machine's installed ``nvidia-dali-cuda120`` (a py3-none wheel:
the same files for every Python) with only the Python 3.12 bindings (the device's Python) and
without its C++ headers, with ``nvidia-nvimgcodec-cu12`` (its decoders; PNG goes to its CPU
codec) and ``nvidia-nvjpeg-cu12`` (JPEG on the GPU), plus cp312 wheels of DALI's Python
dependencies. ``nvidia/__init__.py`` extends the package path, so that the device's own
``nvidia.*`` packages stay importable beside it.
"""

import hashlib
import importlib.metadata
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
DEVICE_DIR = REPO / ".device"  # git-ignored
STAGE = Path("/tmp/solo-scaca-device")  # on the device machine: parts, unpacked streams, site
DEVICE_PYTHON = "3.12"  # the device image's python3 (docs/development.md, KINDS.md)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
HOST_STACK = ("lightning", "torchmetrics", "hydra-core", "omegaconf", "antlr4-python3-runtime",
              "timm", "setuptools")
DALI_DISTS = ("nvidia-dali-cuda120", "nvidia-nvimgcodec-cu12", "nvidia-nvjpeg-cu12")
DALI_TREES = ("nvidia/dali", "nvidia/nvimgcodec", "nvidia/nvjpeg")
UNUSED_CODECS = ("libnvjpeg2k_ext", "libnvtiff_ext")  # nvImageCodec's JPEG 2000 and TIFF on GPU
DALI_PY_DEPS = ("astunparse", "gast", "libcst", "makefun", "nvtx", "optree")
CLUTTER_NAME = "cifar10-clutter-500pc-1000pc"  # benchmarks.data.clutter_root's name
CALL_MIB = 52  # chunks per staging call; the working tree (~8 MiB) travels too, 64 MiB in all
NVIDIA_INIT = ('"""Namespace of the carried NVIDIA packages (DALI and its codecs), extended '
               'to every\n``nvidia`` folder on sys.path (the device\'s own CUDA packages)."""\n'
               "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n")


def say(message: str) -> None:
    print(f"[device] {message}", flush=True)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------ streams
def write_stream(entries: Sequence[Tuple[Path, str]], dest: Path, compress: bool) -> Path:
    """A tar (``.tar.xz`` when ``compress``) of ``(path, arcname)`` entries (folders
    recursively, ``__pycache__`` left out), written whole or not at all. ``xz -T0`` when it is
    installed (fast), else Python's lzma."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    skip = lambda info: None if "__pycache__" in info.name else info  # noqa: E731
    xz = shutil.which("xz") if compress else None
    if xz:
        with tmp.open("wb") as out:
            proc = subprocess.Popen([xz, "-6", "-T0", "-c"], stdin=subprocess.PIPE, stdout=out)
            with tarfile.open(fileobj=proc.stdin, mode="w|") as tar:
                for path, arcname in entries:
                    tar.add(path, arcname=arcname, filter=skip)
            proc.stdin.close()
            if proc.wait() != 0:
                raise RuntimeError(f"xz failed ({proc.returncode}) writing {dest}")
    else:
        with tarfile.open(tmp, mode="w:xz" if compress else "w") as tar:
            for path, arcname in entries:
                tar.add(path, arcname=arcname, filter=skip)
    tmp.rename(dest)
    return dest


def plan_calls(sizes: Dict[str, int], call_bytes: int) -> List[List[Tuple[str, int, int]]]:
    """Cuts the streams (name -> bytes, in order) into chunks that fill staging calls of at
    most ``call_bytes`` each: per call, ``(stream, offset, length)`` chunks."""
    calls: List[List[Tuple[str, int, int]]] = [[]]
    room = call_bytes
    for name, size in sizes.items():
        offset = 0
        while offset < size:
            if room == 0:
                calls.append([])
                room = call_bytes
            length = min(room, size - offset)
            calls[-1].append((name, offset, length))
            offset += length
            room -= length
    return [c for c in calls if c]


def split_streams(streams: Dict[str, Path], calls_dir: Path, call_bytes: int) -> Dict:
    """Writes each staging call's chunks into ``calls_dir/NN/`` and returns the manifest part
    that finds them again: per stream its file name, size, sha256 and chunk names in order."""
    shutil.rmtree(calls_dir, ignore_errors=True)
    plan = plan_calls({k: v.stat().st_size for k, v in streams.items()}, call_bytes)
    chunks: Dict[str, List[str]] = {k: [] for k in streams}
    calls = []
    for number, call in enumerate(plan, 1):
        folder = calls_dir / f"{number:02d}"
        folder.mkdir(parents=True)
        for stream, offset, length in call:
            name = f"{stream}.{len(chunks[stream]):03d}"
            with streams[stream].open("rb") as src, (folder / name).open("wb") as dst:
                src.seek(offset)
                remaining = length
                while remaining:
                    block = src.read(min(1 << 20, remaining))
                    dst.write(block)
                    remaining -= len(block)
            chunks[stream].append(name)
        calls.append(f"{calls_dir.name}/{folder.name}")
    return {"calls": calls,
            "streams": {k: {"file": v.name, "bytes": v.stat().st_size, "sha256": sha256(v),
                            "chunks": chunks[k]} for k, v in streams.items()}}


class ChunkReader:
    """The chunks of one stream read back as one file (for ``tarfile``'s stream modes)."""

    def __init__(self, paths: Sequence[Path]):
        self.paths, self.index, self.current = list(paths), 0, None
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        out = b""
        while size < 0 or len(out) < size:
            if self.current is None:
                if self.index == len(self.paths):
                    break
                self.current = self.paths[self.index].open("rb")
                self.index += 1
            block = self.current.read(-1 if size < 0 else size - len(out))
            if not block:
                self.current.close()
                self.current = None
                continue
            out += block
        self.digest.update(out)
        return out


def find_chunks(stream: Dict, places: Sequence[Path]) -> Tuple[List[Path], List[str]]:
    """Where each chunk of a stream is (the first of ``places`` that has it), and the missing."""
    found, missing = [], []
    for name in stream["chunks"]:
        hits = [p for place in places for p in place.glob(f"*/{name}")] + [
            place / name for place in places if (place / name).is_file()]
        if hits:
            found.append(hits[0])
        else:
            missing.append(name)
    return found, missing


def unpack_stream(name: str, stream: Dict, places: Sequence[Path],
                  dest: Path) -> Tuple[bool, str]:
    """Extracts a stream whose chunks are all in ``places`` into ``dest`` (sha256 checked);
    returns whether it did, and what happened in words."""
    found, missing = find_chunks(stream, places)
    if missing:
        return False, (f"{name}: {len(missing)} of {len(stream['chunks'])} chunks missing "
                f"({', '.join(missing[:4])}{'...' if len(missing) > 4 else ''}): their staging "
                "calls did not land on this machine")
    start = time.time()
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    reader = ChunkReader(found)
    mode = "r|xz" if stream["file"].endswith(".xz") else "r|"
    try:
        with tarfile.open(fileobj=reader, mode=mode) as tar:
            tar.extractall(tmp, filter="data")
        reader.read()  # the tail after tar's end-of-archive blocks, for the checksum
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as err:
        shutil.rmtree(tmp)
        return False, f"{name}: unreadable ({err}): not installed"
    if reader.digest.hexdigest() != stream["sha256"]:
        shutil.rmtree(tmp)
        return False, f"{name}: sha256 differs from the manifest's: not installed"
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return True, f"{name}: {stream['bytes'] / 2**20:.0f} MiB unpacked in {time.time() - start:.0f} s"


# ---------------------------------------------------------------------------------- building
def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    say(" ".join(cmd))
    subprocess.run(cmd, check=True)


def download_wheels(names: Sequence[str], dest: Path, python: str = DEVICE_PYTHON) -> None:
    """Wheels of ``names`` at this machine's installed versions, for the device's Python, no
    dependencies (the device has the rest); sdist-only ones are built here (pure Python)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        pin = f"{name}=={importlib.metadata.version(name)}"
        platforms = [a for p in PLATFORMS for a in ("--platform", p)]
        try:
            _pip("download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
                 python, "--implementation", "cp", *platforms, "-d", str(dest), pin)
        except subprocess.CalledProcessError:
            _pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dest), pin)


def host_wheel(dest: Path, checkout: Optional[Path] = None) -> None:
    """solo-learn's wheel, built from its checkout ($SOLO_LEARN_ROOT, default /opt/solo-learn)."""
    checkout = checkout or Path(os.environ.get("SOLO_LEARN_ROOT", "/opt/solo-learn"))
    _pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dest), str(checkout))


def dali_entries(work: Path) -> List[Tuple[Path, str]]:
    """The installed DALI, codec and nvJPEG trees (Python 3.12 bindings only, no C++ headers,
    no GPU JPEG 2000 or TIFF codecs) as ``(path, arcname)`` under ``site/``, the ``nvidia`` namespace file and the folder of
    DALI's Python dependencies' wheels (``wheels-dali/``)."""
    import nvidia.dali  # noqa: F401 (where it is installed)

    site = Path(nvidia.dali.__file__).resolve().parents[2]
    tag = "cpython-" + DEVICE_PYTHON.replace(".", "")
    entries = []
    for tree in DALI_TREES:
        for path in sorted((site / tree).rglob("*")):
            rel = path.relative_to(site).as_posix()
            if path.is_dir() or "__pycache__" in rel or rel.startswith("nvidia/dali/include/"):
                continue
            if "cpython-" in path.name and tag + "-" not in path.name:
                continue  # another Python's bindings
            if path.name.startswith(UNUSED_CODECS):
                continue  # codecs of formats never read here (their libraries are not carried)
            entries.append((path, f"site/{rel}"))
    init = work / "nvidia_init.py"
    init.write_text(NVIDIA_INIT)
    entries.append((init, "site/nvidia/__init__.py"))
    wheels = work / "wheels-dali"
    download_wheels(DALI_PY_DEPS, wheels)
    entries.append((wheels, "wheels-dali"))
    return entries


def prepare(dest: Path = DEVICE_DIR, cifar_dir: Optional[Path] = None, dali: bool = True,
            clutter: bool = True, call_mib: int = CALL_MIB) -> Dict:
    """Builds ``dest`` (``base/``, the staging calls' ``calls/NN/``, ``base/MANIFEST.json``)
    and returns the manifest."""
    from benchmarks import data

    cifar_dir = Path(cifar_dir or data.shared_data_dir() / "cifar10")
    base, work = dest / "base", dest / "work"
    shutil.rmtree(base, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    say(f"host wheels -> {base / 'wheels'}")
    host_wheel(base / "wheels")
    download_wheels(HOST_STACK, base / "wheels")
    (base / "cifar10").mkdir(parents=True)
    for name in data.CIFAR10_SHA256:
        if sha256(cifar_dir / name) != data.CIFAR10_SHA256[name]:
            raise ValueError(f"{cifar_dir / name}: sha256 differs from benchmarks.data's")
        shutil.copy2(cifar_dir / name, base / "cifar10" / name)
    streams = {}
    if dali:
        stamp = json.dumps({"dists": {d: _version(d) for d in (*DALI_DISTS, *DALI_PY_DEPS)},
                            "python": DEVICE_PYTHON, "skip": UNUSED_CODECS}, sort_keys=True)
        stream, stamp_file = work / "dali.tar.xz", work / "dali.stamp"
        if stream.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
            say(f"DALI: {stream} is of the installed versions: kept")
        else:
            say("DALI: packing the installed tree for Python 3.12 (minutes: xz)")
            stamp_file.unlink(missing_ok=True)
            write_stream(dali_entries(work), stream, compress=True)
            stamp_file.write_text(stamp)
        streams["dali"] = stream
    if clutter:
        from solo_scaca.data.clutter import generate_clutter

        say("clutter set: 500 training and 1000 test objects per class")
        root = generate_clutter(work / CLUTTER_NAME, cifar_dir, 500, 1000)
        streams["clutter"] = write_stream([(root, CLUTTER_NAME)], work / "clutter.tar",
                                          compress=False)
    from benchmarks.common import commit

    manifest = {"created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "commit": commit(),  # the device's copy may have no (or a stale) .git
                "dists": {d: _version(d) for d in (*HOST_STACK, *DALI_DISTS, "solo-learn")},
                **split_streams(streams, dest / "calls", call_mib * 2**20)}
    (base / "MANIFEST.json").write_text(json.dumps(manifest, indent=2))
    sizes = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2**20
             for p in [base, *sorted((dest / "calls").glob("*"))]}
    say("built: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in sizes.items()))
    return manifest



def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


# -------------------------------------------------------------------------------- installing
def stage_places(repo: Path = REPO, stage: Path = STAGE) -> List[Path]:
    """Where staging calls leave chunks: the repository copy's ``.device/calls`` and
    ``/tmp/solo-scaca-device/parts``."""
    return [repo / ".device" / "calls", stage / "parts"]


def install(base: Path, stage: Path = STAGE, places: Optional[Sequence[Path]] = None,
            want_dali: bool = True) -> Dict[str, object]:
    """On the device: the host stack's wheels into ``stage/site`` (``pip install --no-index
    --no-deps --target``), DALI's stream there too when it is complete, the clutter stream into
    ``stage/data``. Returns the site folder, what happened, and the data found."""
    manifest = json.loads((base / "MANIFEST.json").read_text())
    site = stage / "site"
    notes = []
    places = list(places or stage_places(stage=stage))
    wheels = sorted((base / "wheels").glob("*.whl"))
    _pip("install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
         "--upgrade", "--target", str(site), *map(str, wheels))
    notes.append(f"host stack: {len(wheels)} wheels installed into {site}")
    out: Dict[str, object] = {"site": site, "cifar_dir": base / "cifar10", "clutter": None}
    streams = manifest.get("streams", {})
    if "dali" in streams and want_dali:
        unpacked = stage / "dali"
        ok, note = unpack_stream("dali", streams["dali"], places, unpacked)
        notes.append(note)
        if ok:
            shutil.copytree(unpacked / "site", site, dirs_exist_ok=True)
            deps = sorted((unpacked / "wheels-dali").glob("*.whl"))
            _pip("install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
                 "--upgrade", "--target", str(site), *map(str, deps))
    elif want_dali:
        notes.append("dali: not in the manifest (prepared with --no-dali)")
    if "clutter" in streams:
        ok, note = unpack_stream("clutter", streams["clutter"], places, stage / "clutter")
        notes.append(note)
        if ok and (stage / "clutter" / CLUTTER_NAME / "DONE").exists():
            out["clutter"] = stage / "clutter" / CLUTTER_NAME
    out["notes"] = notes
    return out


def activate(site: Path) -> None:
    """``site`` and the repository first on this process's path and on its children's."""
    for path in (str(REPO), str(site)):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(site), str(REPO), os.environ.get("PYTHONPATH")) if p)
    import importlib

    importlib.invalidate_caches()
    if "nvidia" in sys.modules:  # imported before the carried tree was there: extend it
        import pkgutil

        nvidia = sys.modules["nvidia"]
        nvidia.__path__ = pkgutil.extend_path(list(nvidia.__path__), "nvidia")


# ------------------------------------------------------------------------------ the tool calls
RUN_COMMAND = ("PYTHONUNBUFFERED=1 python3 -m benchmarks device --out /tmp/device-results "
               "--archive $OUT/device-results.tar.gz --deadline 480")


def tool_calls(manifest: Optional[Dict], run_command: str = RUN_COMMAND) -> str:
    """The device tool's calls for a prepared ``.device/``, in words and as calls."""
    if manifest is None:
        return ("No .device/ here yet: run `python3 -m benchmarks device --prepare` first (it "
                "builds it and prints these calls with the staging calls filled in).")
    lines = []
    calls = manifest.get("calls", [])
    if calls:
        lines += [f"1. {len(calls)} staging call(s), one right after the other (the machine "
                  "keeps files only while warm: 30 s after a call), each about 10 s:"]
        for call in calls:
            folder = f".device/{call}"
            lines.append(
                f'   run(command="mkdir -p {STAGE}/parts && cp {folder}/* {STAGE}/parts/ && '
                f'ls -l {STAGE}/parts", carry=["{folder}"], timeout_s=120)')
        what = ", ".join(f"{k} ({len(v['chunks'])} chunks, {v['bytes'] / 2**20:.0f} MiB)"
                         for k, v in manifest["streams"].items())
        lines += [f"   They carry: {what}. Skipping them runs without DALI (torchvision only) "
                  "and generates the clutter set there.", ""]
    lines += [f"{2 if calls else 1}. the run (installs .device/base offline, then the three "
              "stages; 480 s deadline inside a 540 s call):",
              f'   run(command="{run_command}", carry=[".device/base"], timeout_s=540)',
              "   then give_back(). The results come back as device-results.tar.gz (every "
              "file) and the output's tail prints summary.md."]
    return "\n".join(lines)


def read_manifest(dest: Optional[Path] = None) -> Optional[Dict]:
    """The manifest of the prepared ``.device/`` (``dest``), or None."""
    path = (dest or DEVICE_DIR) / "base" / "MANIFEST.json"
    return json.loads(path.read_text()) if path.exists() else None

