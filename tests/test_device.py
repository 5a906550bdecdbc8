"""``python3 -m benchmarks device``: the one-call device run at tiny sizes on CPU (every stage's
CPU path, the deadline), the sizing formula, the process runner and what travels (chunks,
manifest, the printed device calls)."""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from benchmarks import device, device_payload as payload
from tests.test_benchmarks import _cifar_dir

REPO = Path(__file__).resolve().parent.parent


def _command(base: Path, out: str, *extra: str):
    return [sys.executable, "-m", "benchmarks", "device", "--tiny", "--out", str(base / out),
            "--data-root", str(base / "data" / "cifar10"), "--work-dir", str(base / "work"),
            "--cifar-dir", str(_cifar_dir()), *extra]


def _run(cmd, timeout=600):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    start = time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{(proc.stdout + proc.stderr)[-5000:]}"
    return proc.stdout, time.time() - start


@pytest.fixture(scope="module")
def tiny_call(tmp_path_factory):
    """The whole command at tiny sizes on CPU: both loaders, the overhead, and on the clutter set
    swav (with its incentive check), swav_scaca and the positive control byol_lewel (BYOL's
    config: the other arms and CIFAR-10 run the same code)."""
    base = tmp_path_factory.mktemp("device")
    stdout, seconds = _run(_command(base, "out", "--deadline", "600", "--datasets", "clutter",
                                    "--arms", "swav", "swav_scaca", "byol_lewel", "--archive",
                                    str(base / "archive" / "results.tar.gz")))
    return {"base": base, "out": base / "out", "stdout": stdout, "seconds": seconds}


def test_every_stage_runs_its_cpu_path(tiny_call):
    out = tiny_call["out"]
    throughput = json.loads((out / "throughput.json").read_text())
    for loader in ("image_folder", "dali"):
        row = throughput[loader]
        assert row["status"] == "done", row
        assert row["train_images_per_s"] > 0 and row["loader_images_per_s"] > 0
        assert row["gpu_busy"] == "n/a" and row["device"] == "cpu"
    assert throughput["dali"]["dali_device"] == "cpu"
    assert "| image_folder | done |" in (out / "throughput.md").read_text()
    overhead = json.loads((out / "overhead.json").read_text())
    assert overhead["device"] == "cpu" and overhead["step_ratio"] > 0
    assert "ratio scaca/swav" in (out / "overhead.md").read_text()
    plan = json.loads((out / "sizing.json").read_text())
    assert plan["epochs"] == {"clutter": 1} and plan["loader"] in ("image_folder", "dali")
    assert "epochs_d = floor" in plan["formula"]
    runs = {p.stem: json.loads(p.read_text()) for p in (out / "campaign_runs").glob("*.json")}
    assert sorted(runs) == ["clutter-byol_lewel", "clutter-swav", "clutter-swav_scaca"]
    for name, run in runs.items():
        assert run["epochs"] == 1 and run["data_format"] == plan["loader"]
        assert 0 <= run["knn20_top1"] <= 100, name
        assert name == "clutter-swav" or run["mask_in_box"] > 0 < run["mask_in_box_prior"], name
    assert "mask_in_box_best_map" in runs["clutter-byol_lewel"]
    assert runs["clutter-byol_lewel"]["method"] == "byol_lewel"
    # the incentive check on the swav checkpoint, one canvas and two canvases per object
    assert "| self |" in (out / "incentive.md").read_text()
    assert "-pair-seed1` (another background" in (out / "incentive-paired.md").read_text()
    summary = (out / "summary.md").read_text()
    assert summary.rstrip().splitlines()[-1].startswith("finished in")
    assert "campaign: 3 of 3 runs finished" in summary
    assert "finished in" in tiny_call["stdout"]  # the summary is printed at the end
    with tarfile.open(tiny_call["base"] / "archive" / "results.tar.gz") as tar:
        names = tar.getnames()
    assert "out/summary.md" in names and "out/campaign_runs/clutter-swav_scaca.json" in names


def test_deadline_cuts_the_campaign_and_keeps_what_finished(tiny_call):
    """A deadline far too short for the campaign: the stages already in --out are kept (not
    run again), the campaign's runs are killed at the deadline, and the summary says so."""
    base, out = tiny_call["base"], tiny_call["base"] / "cut"
    out.mkdir()
    for name in ("throughput", "overhead"):
        for suffix in (".json", ".md", ".csv"):
            shutil.copy(tiny_call["out"] / f"{name}{suffix}", out)
    stdout, seconds = _run(_command(base, "cut", "--deadline", "25", "--epochs", "50"))
    assert seconds < 90  # the deadline, start-up and the kill's grace
    summary = (out / "summary.md").read_text()
    final = summary.rstrip().splitlines()[-1]
    assert final.startswith("stopped at the deadline (25 s)") and "campaign" in final
    assert float(final.split(" after ")[1].split(" s")[0]) <= 25  # everything gone before it
    assert "throughput: kept from an earlier call" in summary
    state = json.loads((out / "summary.json").read_text())
    assert state["stages"]["throughput"] == "kept" and state["stages"]["overhead"] == "kept"
    assert "deadline" in state["stages"]["campaign"]
    assert not list((out / "campaign_runs").glob("*.json"))
    campaign = (out / "campaign.md").read_text()  # the table of the cut campaign is written
    # four swav arms on both datasets, byol and byol_lewel on the clutter set only
    assert campaign.count("stopped at the deadline") + campaign.count("not started") == 10
    assert "| cifar10 | byol" not in campaign and "| clutter | byol_lewel |" in campaign
    assert "stopped at the deadline" in stdout


# ---------------------------------------------------------------------- deadline and sizing
def test_run_children_kills_what_runs_at_the_deadline(tmp_path):
    deadline = device.Deadline(2.0, 0.0)
    seen = []
    start = time.time()
    status = device.run_children(
        {"quick": [sys.executable, "-c", "pass"], "fails": [sys.executable, "-c", "exit(3)"],
         "slow": [sys.executable, "-c", "import time; time.sleep(60)"]},
        tmp_path / "logs", deadline, poll_s=0.1, on_exit=lambda n, s: seen.append(n))
    assert time.time() - start < 15
    assert status["quick"] == "done" and status["fails"].startswith("failed (exit 3")
    assert status["slow"] == "stopped at the deadline"
    assert sorted(seen) == ["fails", "quick", "slow"]


def _measured(t, busy, loader_ips, startup=10.0):
    return {"train_images_per_s": t, "gpu_busy": busy, "loader_images_per_s": loader_ips,
            "startup_s": startup}


def test_sizing_formula():
    sizes = device._profiles()["gpu"]
    throughput = {"image_folder": _measured(1000.0, 0.2, 5000.0),
                  "dali": _measured(3000.0, 0.3, 20000.0)}
    plan = device.sizing(throughput, {"step_ratio": 1.25}, 8, {"clutter": 5000, "cifar10": 50000},
                         {"clutter": 10000, "cifar10": 10000}, 300.0, sizes)
    assert plan["loader"] == "dali"
    assert plan["aggregate_images_per_s"] == pytest.approx(10000.0)  # min(3000/0.3, 8*3000, 2e4)
    per_run = device.SAFETY * 10000.0 / 8 / 1.25
    assert plan["per_run_images_per_s"] == pytest.approx(per_run)
    startup = 10.0 * device.STARTUP_FACTOR
    for d, n, m in (("clutter", 5000, 10000), ("cifar10", 50000, 10000)):
        budget = 300.0 - startup - (device.EVAL_FIXED_S + (n + m) / device.EVAL_IMAGES_PER_S)
        assert plan["epochs"][d] == min(sizes.max_epochs, int(budget * per_run / n))
    assert plan["epochs"]["clutter"] > plan["epochs"]["cifar10"] >= 1
    # DALI did not run: torchvision, no overhead measured: the default ratio
    plan = device.sizing({"image_folder": _measured(1000.0, "n/a", 5000.0),
                          "dali": {"status": "not run"}}, None, 8, {"cifar10": 50000},
                         {"cifar10": 10000}, 300.0, sizes)
    assert plan["loader"] == "image_folder" and plan["step_ratio"] == device.DEFAULT_RATIO
    # without a GPU's busy share, b = 1: one run is taken to fill the machine
    assert plan["aggregate_images_per_s"] == pytest.approx(1000.0)
    assert device.sizing({}, None, 8, {"cifar10": 50000}, {"cifar10": 10000}, 300.0,
                         sizes)["epochs"] == {"cifar10": 0}
    assert device.sizing(throughput, None, 8, {"cifar10": 50000}, {"cifar10": 10000}, 5.0,
                         sizes)["epochs"] == {"cifar10": 0}  # nothing fits
    assert device.sizing(throughput, None, 8, {"cifar10": 50000}, {"cifar10": 10000}, 5.0,
                         sizes, fixed=3)["epochs"] == {"cifar10": 3}


def test_gpu_sampler_says_na_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the sampler reads it")
    sampler = device.GpuSampler(every=0.05)
    sampler.start()
    time.sleep(0.2)
    assert sampler.stop() == {"gpu_busy": "n/a", "gpu_memory_MiB": "n/a", "gpu_samples": 0}


# ------------------------------------------------------------------------ what travels there
def test_plan_calls_fills_each_call_in_order():
    calls = payload.plan_calls({"dali": 250, "clutter": 40}, 100)
    assert calls == [[("dali", 0, 100)], [("dali", 100, 100)],
                     [("dali", 200, 50), ("clutter", 0, 40)]]
    assert payload.plan_calls({"a": 100}, 100) == [[("a", 0, 100)]]


def test_streams_split_into_calls_and_unpack_back(tmp_path):
    src = tmp_path / "src"
    (src / "site" / "nvidia" / "dali").mkdir(parents=True)
    blob = os.urandom(3000)  # incompressible: several chunks
    (src / "site" / "nvidia" / "dali" / "lib.so").write_bytes(blob)
    (src / "clutter").mkdir()
    (src / "clutter" / "DONE").write_text("x")
    streams = {
        "dali": payload.write_stream([(src / "site", "site")], tmp_path / "dali.tar.xz", True),
        "clutter": payload.write_stream([(src / "clutter", "clutter")], tmp_path / "c.tar",
                                        False),
    }
    manifest = payload.split_streams(streams, tmp_path / "dev" / "calls", 2048)
    assert len(manifest["calls"]) >= 3 and manifest["calls"][0] == "calls/01"
    assert all(len(list((tmp_path / "dev" / c).iterdir())) >= 1 for c in manifest["calls"])
    places = [tmp_path / "dev" / "calls", tmp_path / "parts"]
    ok, note = payload.unpack_stream("dali", manifest["streams"]["dali"], places,
                                     tmp_path / "out" / "dali")
    assert ok, note
    assert (tmp_path / "out" / "dali" / "site" / "nvidia" / "dali" / "lib.so").read_bytes() == blob
    # a staging call copied to /tmp/.../parts instead: found there
    (tmp_path / "parts").mkdir()
    for chunk in (tmp_path / "dev" / "calls").glob("*/clutter.*"):
        shutil.move(str(chunk), tmp_path / "parts" / chunk.name)
    ok, note = payload.unpack_stream("clutter", manifest["streams"]["clutter"], places,
                                     tmp_path / "out" / "clutter")
    assert ok and (tmp_path / "out" / "clutter" / "clutter" / "DONE").read_text() == "x"
    # a call that did not land, or a damaged chunk: said, nothing installed
    first = next((tmp_path / "dev" / "calls" / "01").iterdir())
    data = first.read_bytes()
    first.unlink()
    ok, note = payload.unpack_stream("dali", manifest["streams"]["dali"], places,
                                     tmp_path / "out2")
    assert not ok and "1 of" in note and "missing" in note and first.name in note
    first.write_bytes(bytes(len(data)))
    ok, note = payload.unpack_stream("dali", manifest["streams"]["dali"], places,
                                     tmp_path / "out2")
    assert not ok and "not installed" in note and not (tmp_path / "out2").exists()


def test_help_prints_the_device_calls(tmp_path, monkeypatch):
    manifest = {"calls": ["calls/01", "calls/02"],
                "streams": {"dali": {"chunks": ["dali.000", "dali.001"], "bytes": 90 * 2**20},
                            "clutter": {"chunks": ["clutter.000"], "bytes": 2**20}}}
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "MANIFEST.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(payload, "DEVICE_DIR", tmp_path)
    text = device.parser().format_help()
    assert ('run(command="mkdir -p /tmp/solo-scaca-device/parts && cp .device/calls/02/* '
            '/tmp/solo-scaca-device/parts/ && ls -l /tmp/solo-scaca-device/parts", '
            'carry=[".device/calls/02"], timeout_s=120)') in " ".join(text.split())
    run_call = (f'run(command="{payload.RUN_COMMAND}", carry=[".device/base"], '
                'timeout_s=540)')
    assert run_call in " ".join(text.split())
    assert "python3 -m benchmarks device --out" in payload.RUN_COMMAND
    assert "--deadline 480" in payload.RUN_COMMAND
    monkeypatch.setattr(payload, "DEVICE_DIR", tmp_path / "none")
    assert "python3 -m benchmarks device --prepare" in device.parser().format_help()


def test_benchmarks_entry_point_passes_help_through():
    stdout, _ = _run([sys.executable, "-m", "benchmarks", "device", "--help"], timeout=120)
    assert "python3 -m benchmarks device" in stdout and "--deadline" in stdout
    assert "run(command=" in stdout or "--prepare" in stdout
    stdout, _ = _run([sys.executable, "-m", "benchmarks", "list"], timeout=120)
    assert "device:" in stdout


def _tiny_wheel(tmp_path: Path, name: str) -> Path:
    """A pure-Python wheel of one module ``name`` that defines ``VALUE = name``."""
    project = tmp_path / f"project-{name}"
    project.mkdir()
    (project / f"{name}.py").write_text(f"VALUE = {name!r}\n")
    (project / "setup.py").write_text(
        f"from setuptools import setup\nsetup(name={name!r}, version='1.0', "
        f"py_modules=[{name!r}])\n")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "built"), str(project)],
                   check=True, capture_output=True)
    return next((tmp_path / "built").glob(f"{name}-*.whl"))


def test_install_on_the_device_side(tmp_path, monkeypatch):
    """What the run call does on a bare machine, with stand-ins: the base's wheels into the
    site, DALI's stream (its tree and its dependencies' wheels) when all chunks landed, the
    clutter set; a stream whose chunks did not land is said and skipped."""
    base = tmp_path / "dev" / "base"
    (base / "wheels").mkdir(parents=True)
    shutil.copy(_tiny_wheel(tmp_path, "hoststack_standin"), base / "wheels")
    src = tmp_path / "src"
    (src / "site" / "nvidia" / "fakedali").mkdir(parents=True)
    (src / "site" / "nvidia" / "__init__.py").write_text(payload.NVIDIA_INIT)
    (src / "site" / "nvidia" / "fakedali" / "__init__.py").write_text("OK = True\n")
    (src / "wheels-dali").mkdir()
    shutil.copy(_tiny_wheel(tmp_path, "dalidep_standin"), src / "wheels-dali")
    clutter = src / payload.CLUTTER_NAME
    (clutter / "train").mkdir(parents=True)
    (clutter / "DONE").write_text("{}")
    streams = {
        "dali": payload.write_stream([(src / "site", "site"), (src / "wheels-dali",
                                                                "wheels-dali")],
                                     tmp_path / "dali.tar.xz", True),
        "clutter": payload.write_stream([(clutter, payload.CLUTTER_NAME)],
                                        tmp_path / "clutter.tar", False),
    }
    manifest = payload.split_streams(streams, tmp_path / "dev" / "calls", 4096)
    (base / "MANIFEST.json").write_text(json.dumps(manifest))
    stage = tmp_path / "stage"
    # where staging calls leave chunks: the repository copy's .device/calls, /tmp's parts
    assert payload.stage_places(repo=tmp_path, stage=stage) == [
        tmp_path / ".device" / "calls", stage / "parts"]
    places = [tmp_path / "dev" / "calls", stage / "parts"]
    out = payload.install(base, stage=stage, places=places)
    site = out["site"]
    assert (site / "hoststack_standin.py").exists() and (site / "dalidep_standin.py").exists()
    assert (site / "nvidia" / "fakedali" / "__init__.py").exists()
    assert out["clutter"] == stage / "clutter" / payload.CLUTTER_NAME
    assert out["cifar_dir"] == base / "cifar10"
    assert any(n.startswith("dali:") and "unpacked" in n for n in out["notes"])
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    payload.activate(site)
    code = ("import hoststack_standin, nvidia.fakedali; "
            "print(hoststack_standin.VALUE, nvidia.fakedali.OK)")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=dict(os.environ), cwd=tmp_path)
    assert child.stdout.split() == ["hoststack_standin", "True"], child.stderr[-2000:]
    # the staging calls of the clutter set did not land: said, not installed
    for chunk in (tmp_path / "dev" / "calls").glob("*/clutter.*"):
        chunk.unlink()
    out = payload.install(base, stage=tmp_path / "stage2", places=places, want_dali=False)
    assert out["clutter"] is None
    assert any(n.startswith("clutter:") and "missing" in n for n in out["notes"])


def test_incentive_check_starts_only_with_its_time_left(tmp_path, capsys):
    sizes = device._profiles()["gpu"]
    spec = {"deadline_at": time.time() + sizes.incentive_s - 1, "pair_root": str(tmp_path),
            "root": str(tmp_path), "out": str(tmp_path)}
    device.incentive_check(str(tmp_path / "none.ckpt"), spec, sizes)
    assert capsys.readouterr().out.count("skipped, the deadline") == 2
    assert not list(tmp_path.iterdir())
