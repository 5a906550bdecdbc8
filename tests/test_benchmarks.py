"""The accuracy benchmark and the ``python3 -m benchmarks`` runner, end to end on the tiny profile
(real CIFAR-10 images: a few per class from the project's shared data), resume and report."""

import csv
import importlib.util
import io
import json
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from benchmarks import data as bench_data
from benchmarks import accuracy, profiles, runs
from benchmarks.__main__ import main as bench_main

REPO = Path(__file__).resolve().parent.parent


def _cifar_dir() -> Path:
    """CIFAR-10 tarballs of the project's shared data (``benchmarks.data.shared_data_dir``);
    the benchmark tests are skipped, with the reason, where they are absent."""
    cifar = bench_data.shared_data_dir() / "cifar10"
    missing = [n for n in ("train.tar.gz", "test.tar.gz") if not (cifar / n).exists()]
    if missing:
        pytest.skip(
            f"the real CIFAR-10 tarballs {missing} are not in {cifar}: the benchmark tests need "
            f"the project's shared data (../shared/data beside the repository, or set "
            f"SOLO_SCACA_SHARED_DATA to that folder)")
    return cifar


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory):
    """The tiny profile run once through ``python3 -m benchmarks``'s main, into tmp folders."""
    base = tmp_path_factory.mktemp("bench")
    data = bench_data.sample_cifar(_cifar_dir(), base / "data", train_per_class=8,
                                 test_per_class=4)
    argv = ["accuracy", "--profile", "tiny", "--out", str(base / "results"), "--data-root",
            str(data), "--work-dir", str(base / "work")]
    bench_main(argv)
    return {"base": base, "argv": argv, "out": base / "results", "dir": base / "results" / "tiny"}


def _csv(path: Path):
    with path.open() as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_tiny_tables(tiny_suite):
    out = tiny_suite["dir"]
    columns, rows = _csv(out / "accuracy.csv")
    assert columns == accuracy.SUMMARY_COLUMNS
    assert [r["metric"] for r in rows] == [label for _, label in accuracy.METRICS]
    for row in rows:
        for method in accuracy.METHODS:
            assert 0.0 <= float(row[f"{method}_mean"]) <= 100.0
            assert row[f"{method}_std"] == "n/a"  # one seed
        assert abs(float(row["diff"]) - (float(row["swav_scaca_mean"])
                                         - float(row["swav_mean"]))) < 1e-9
        assert row["exceeds_noise"].startswith("n/a")

    columns, runs = _csv(out / "accuracy_runs.csv")
    assert columns == accuracy.RUN_COLUMNS
    assert sorted((r["method"], r["seed"]) for r in runs) == [("swav", "0"), ("swav_scaca", "0")]
    for run in runs:
        for key in ("knn20_top1", "knn200_top1", "linear_top1"):
            assert 0.0 <= float(run[key]) <= 100.0
        assert (run["train_images"], run["test_images"]) == ("80", "40")
        assert float(run["pretrain_s"]) > 0 and float(run["wall_s"]) >= float(run["pretrain_s"])

    md = (out / "accuracy.md").read_text()
    for needle in ("commit:", "machine:", "command:", "64 px", "two-sample t-test",
                   "| metric | swav_mean"):
        assert needle in md, needle
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiny_run_files(tiny_suite):
    runs = sorted((tiny_suite["dir"] / "runs").glob("*.json"))
    assert [p.name for p in runs] == ["swav-seed0.json", "swav_scaca-seed0.json"]
    for path in runs:
        run = json.loads(path.read_text())
        for key in ("command", "commit", "machine", "versions", "date", "seed", "method",
                    "wall_s", "checkpoint", "settings", "knn20_top1", "knn200_top1",
                    "linear_top1"):
            assert key in run, key
        assert Path(run["checkpoint"]).exists()
        assert run["settings"]["epochs"] == 1 and run["settings"]["crop_size"] == 64
        # in this process: the command that ran it is pytest's, quoted to be pasted in a shell
        assert shlex.split(run["command"]) == getattr(sys, "orig_argv", sys.argv)
    # both methods had exactly the same settings
    settings = [json.loads(p.read_text())["settings"] for p in runs]
    assert settings[0] == settings[1]


def test_second_invocation_skips_finished_runs(tiny_suite):
    runs = sorted((tiny_suite["dir"] / "runs").glob("*.json"))
    before = {p: p.stat().st_mtime_ns for p in runs}
    result = subprocess.run([sys.executable, "-m", "benchmarks", *tiny_suite["argv"]],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("already done") == 2, result.stdout
    assert ": start" not in result.stdout
    assert {p: p.stat().st_mtime_ns for p in runs} == before
    assert (tiny_suite["dir"] / "accuracy.csv").exists()


def test_changed_settings_refuse_to_mix(tiny_suite):
    with pytest.raises(SystemExit, match="other settings"):
        bench_main([*tiny_suite["argv"], "--epochs", "2"])


def test_runs_of_another_seed_list_join_the_tables(tiny_suite, tmp_path):
    """A later ``--seeds`` adds to a folder's runs (the seed list is not a setting that splits
    tables); any other changed setting still refuses to mix."""
    runs = tmp_path / "tiny" / "runs"
    runs.mkdir(parents=True)
    for path in (tiny_suite["dir"] / "runs").glob("*.json"):
        run = json.loads(path.read_text())
        (runs / path.name).write_text(json.dumps(run))
        # the same run file as if measured by a later `--seeds 1` (its numbers shifted)
        later = {**run, "seed": 1, "settings": {**run["settings"], "seeds": [1]},
                 "knn20_top1": run["knn20_top1"] + 1.0}
        (runs / path.name.replace("seed0", "seed1")).write_text(json.dumps(later))
    accuracy.rebuild_tables(runs.parent)
    _, rows = _csv(runs.parent / "accuracy.csv")
    knn20 = next(r for r in rows if r["metric"] == "kNN-20 top-1")
    assert knn20["n_seeds"] == "2/2"
    assert knn20["swav_std"] not in ("n/a", "") and float(knn20["swav_std"]) > 0
    assert "seeds [0, 1]" in (runs.parent / "accuracy.md").read_text()

    other = json.loads((runs / "swav-seed1.json").read_text())
    other["settings"]["epochs"] += 1
    (runs / "swav-seed1.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="mixes run files"):
        accuracy.rebuild_tables(runs.parent)


def test_report_writes_readme(tiny_suite):
    readme = tiny_suite["out"] / "README.md"
    readme.unlink(missing_ok=True)
    tables = [tiny_suite["dir"] / n for n in ("accuracy.md", "accuracy.csv", "accuracy_runs.md")]
    kept = {t: t.read_text() for t in tables}
    for table in tables:  # report rebuilds them from the run files
        table.unlink()
    bench_main(["report", "--out", str(tiny_suite["out"])])
    for table in tables:
        assert table.read_text() == kept[table]
    text = readme.read_text()
    for needle in ("# Benchmark results", "## tiny", "Accuracy: swav_scaca against swav (tiny)",
                   "Accuracy, every run (tiny)", "machine:", "commit:", "command:",
                   "tiny/accuracy.csv", "| metric | swav_mean"):
        assert needle in text, needle
    if (tiny_suite["dir"] / "accuracy.png").exists():
        assert "![tiny/accuracy.png](tiny/accuracy.png)" in text


def _tarball(path: Path, split: str) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for cls in ("a", "b"):
            for i in range(3):
                data = f"{split}{cls}{i}".encode()
                info = tarfile.TarInfo(f"{split}/{cls}/{i:04d}.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return bench_data.sha256(path)


def test_prepare_checks_sha256_extracts_once_and_subsets(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    sums = {f"{s}.tar.gz": _tarball(source / f"{s}.tar.gz", s) for s in ("train", "test")}
    with pytest.raises(ValueError, match="sha256"):
        bench_data.prepare_cifar(tmp_path / "bad", source, {**sums, "train.tar.gz": "0" * 64})
    assert not (tmp_path / "bad" / "train").exists()

    root = bench_data.prepare_cifar(tmp_path / "root", source, sums)
    assert sorted(p.name for p in (root / "train" / "a").iterdir()) == [
        "0000.jpg", "0001.jpg", "0002.jpg"]
    (source / "train.tar.gz").unlink()  # extracted already: not needed again
    bench_data.prepare_cifar(root, source, sums)

    subset = bench_data.class_subset(root / "train", 2, root / "subsets" / "train-2pc")
    files = sorted(p.relative_to(subset).as_posix() for p in subset.rglob("*.jpg"))
    assert files == ["a/0000.jpg", "a/0001.jpg", "b/0000.jpg", "b/0001.jpg"]
    assert all(p.is_symlink() for p in subset.rglob("*.jpg"))
    assert bench_data.class_subset(root / "train", None, tmp_path / "x") == root / "train"
    with pytest.raises(ValueError, match="fewer than"):
        bench_data.class_subset(root / "train", 5, root / "subsets" / "train-5pc")


def _run(method, seed, value):
    return {"method": method, "seed": seed, "knn20_top1": value, "knn200_top1": value,
            "linear_top1": value}


def test_significance_rule():
    # 3 seeds each, std 1: threshold = t(0.975, 4) * 1 * sqrt(2/3) = 2.267
    runs = [_run("swav", s, v) for s, v in enumerate((50.0, 51.0, 52.0))]
    far = runs + [_run("swav_scaca", s, v) for s, v in enumerate((53.0, 54.0, 55.0))]
    near = runs + [_run("swav_scaca", s, v) for s, v in enumerate((51.0, 52.0, 53.0))]
    row = accuracy.summary_rows(far)[0]
    assert row["diff"] == pytest.approx(3.0)
    assert row["threshold"] == pytest.approx(2.776 * (2 / 3) ** 0.5, rel=1e-3)
    assert row["exceeds_noise"] == "yes"
    assert accuracy.summary_rows(near)[0]["exceeds_noise"] == "no"
    assert accuracy.summary_rows(runs)[0]["exceeds_noise"].startswith("n/a")


def test_gpu_profile_config_builds_both_methods(tmp_path):
    """The gpu profile cannot run here: its composed configs go through the host's parser and
    build both methods (the tiny profile runs the rest of the same code)."""
    from omegaconf import OmegaConf
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS

    profile = profiles.PROFILES["accuracy"]["gpu"]
    for method in accuracy.METHODS:
        cfg = runs.pretrain_config(profile, method, 0, tmp_path, tmp_path / "ckpt",
                                       "image_folder")
        OmegaConf.set_struct(cfg, False)
        assert cfg.precision == "16-mixed" and list(cfg.devices) == [0]
        cfg = parse_cfg(cfg)
        assert cfg.method == method and cfg.optimizer.name == "lars"
        assert cfg.scheduler.name == "warmup_cosine" and cfg.method_kwargs.queue_size == 3840
        assert cfg.augmentations[0].crop_size == 64 and cfg.optimizer.batch_size == 256
        assert type(METHODS[method](cfg)).__name__ == {"swav": "SwAV",
                                                       "swav_scaca": "SwAVSCACA"}[method]


def test_runner_lists_benchmarks(capsys):
    bench_main(["list"])
    out = capsys.readouterr().out
    assert "accuracy:" in out and "overhead:" in out and "ablations:" in out


def test_ablations_tiny(tiny_suite):
    """One variant pretrained with its override, the reference rows reused from the accuracy
    suite's run files, a random-init row, resume and the report."""
    from benchmarks import ablations

    common = ["--profile", "tiny", "--out", str(tiny_suite["out"]), "--data-root",
              tiny_suite["argv"][6], "--work-dir", str(tiny_suite["base"] / "work"),
              "--variants", "random init", "swav", "swav_scaca (default)", "ca_pairing=self"]
    bench_main(["ablations", *common])
    columns, rows = _csv(tiny_suite["dir"] / "ablations.csv")
    assert columns == ablations.COLUMNS
    by_variant = {r["variant"]: r for r in rows}
    assert list(by_variant) == ["random init", "swav", "swav_scaca (default)", "ca_pairing=self"]
    assert by_variant["swav"]["source"] == "runs/swav-seed0.json"
    assert by_variant["swav_scaca (default)"]["source"] == "runs/swav_scaca-seed0.json"
    swav_run = json.loads((tiny_suite["dir"] / "runs" / "swav-seed0.json").read_text())
    assert float(by_variant["swav"]["knn20_top1"]) == pytest.approx(swav_run["knn20_top1"])
    assert float(by_variant["swav"]["d_knn20"]) == 0.0
    self_run = json.loads((tiny_suite["dir"] / "ablation_runs" / "ca_pairing_self.json")
                          .read_text())
    assert self_run["benchmark"] == "ablation" and self_run["method"] == "swav_scaca"
    assert self_run["base_settings"] == swav_run["settings"]
    assert "method_kwargs.ca_pairing=self" in self_run["settings"]["hydra_overrides"]
    args = json.loads((Path(self_run["checkpoint"]).parent / "args.json").read_text())
    assert args["method_kwargs"]["ca_pairing"] == "self"
    assert float(by_variant["ca_pairing=self"]["d_knn20"]) == pytest.approx(
        self_run["knn20_top1"] - swav_run["knn20_top1"])
    init = json.loads((tiny_suite["dir"] / "ablation_runs" / "random_init.json").read_text())
    assert init["pretrain_steps"] == 0 and 0 <= init["knn20_top1"] <= 100
    table = (tiny_suite["dir"] / "ablations.md").read_text()
    assert "Not run yet: `ca_pairing=nn`, `ca_pairing=random`, `ca_weight=0.25`" in table

    before = {p: p.stat().st_mtime_ns for p in (tiny_suite["dir"] / "ablation_runs").iterdir()}
    result = subprocess.run([sys.executable, "-m", "benchmarks", "ablations", *common],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("already done") == 2 and ": start" not in result.stdout
    assert {p: p.stat().st_mtime_ns for p in before} == before
    text = (tiny_suite["out"] / "README.md").read_text()
    assert "Ablations of swav_scaca (tiny)" in text and "tiny/ablation_runs/" in text


def test_gpu_profile_runs_on_cpu_with_tiny_budget(tiny_suite, tmp_path):
    """The gpu profile's own settings (DALI loader, LARS, 3000 prototypes, queue 3840), only
    the data, epochs, batch and workers shrunk: its whole path runs here, DALI on the CPU."""
    pytest.importorskip("nvidia.dali", reason="DALI is installed by .[dali] (see .ci/run)")
    bench_main(["accuracy", "--profile", "gpu", "--out", str(tmp_path / "results"),
                "--data-root", tiny_suite["argv"][6], "--work-dir", str(tmp_path / "work"),
                "--epochs", "1", "--batch-size", "32", "--num-workers", "1", "--seeds", "0",
                "--train-per-class", "8", "--test-per-class", "4"])
    gpu = profiles.PROFILES["accuracy"]["gpu"]
    for method in accuracy.METHODS:
        run = json.loads((tmp_path / "results" / "gpu" / "runs" / f"{method}-seed0.json")
                         .read_text())
        assert run["data_format"] == "dali" and run["dataset"] == "cifar10"
        assert run["train_images"] == 80 and run["test_images"] == 40
        assert 0 <= run["linear_top1"] <= 100
        assert run["settings"]["num_prototypes"] == gpu.num_prototypes == 3000
        assert run["settings"]["queue_size"] == gpu.queue_size
        args = json.loads((Path(run["checkpoint"]).parent / "args.json").read_text())
        assert args["method"] == method and args["data"]["format"] == "dali"
        assert args["dali"]["device"] == "cpu"  # no CUDA here
        assert args["optimizer"]["name"] == "lars" and args["scheduler"]["name"] == "warmup_cosine"


def test_cifar100_is_layout_ready(tmp_path, capsys, monkeypatch):
    """CIFAR-100 tarballs (no pinned checksum) extract like CIFAR-10's, and ``--dataset
    cifar100`` takes its data, work and results folders apart from CIFAR-10's."""
    source = tmp_path / "cifar100"
    source.mkdir()
    for split in ("train", "test"):
        _tarball(source / f"{split}.tar.gz", split)
    root = bench_data.prepare_cifar(tmp_path / "root", source, bench_data.CHECKSUMS["cifar100"])
    assert (root / "train" / "a" / "0000.jpg").exists() and (root / "test" / "b").is_dir()
    assert "no pinned sha256" in capsys.readouterr().out
    seen = {}
    monkeypatch.setattr(accuracy, "run_suite", lambda *a, **k: seen.update(args=a, kwargs=k))
    monkeypatch.setenv("SOLO_SCACA_SHARED_DATA", str(tmp_path))
    accuracy.main(["--profile", "tiny", "--dataset", "cifar100"])
    assert seen["kwargs"]["dataset"] == "cifar100"
    assert seen["args"][3].name == "cifar100" and seen["args"][4] == source
    assert accuracy.results_folder("gpu", "cifar100") == "gpu-cifar100"
    assert accuracy.results_folder("gpu", "cifar10") == "gpu"


def test_profile_fields_and_overrides_from_the_command_line(monkeypatch, capsys):
    """``--set`` / ``--override`` / ``--methods`` (for tuning a profile) reach the suite typed;
    a wrong field or value is named."""
    seen = {}
    monkeypatch.setattr(accuracy, "run_suite",
                        lambda profile_name, profile, *a, **k: seen.update(p=profile, k=k))
    accuracy.main(["--profile", "cpu", "--set", "lr=0.15", "--set", "crop_size=32", "--set",
                   "seeds=0,1", "--set", "test_per_class=none", "--set",
                   "augmentations.0.rrc.crop_min_scale=0.35", "--override",
                   "++method_kwargs.sk_epsilon=0.02", "--methods", "swav"])
    profile = seen["p"]
    # a dotted --set replaces the profile's own override of that key
    crop = [o for o in profile.hydra_overrides if "crop_min_scale" in o]
    assert crop == ["augmentations.0.rrc.crop_min_scale=0.35"]
    assert any("crop_min_scale=0.3" in o
               for o in profiles.PROFILES["accuracy"]["cpu"].hydra_overrides)
    assert profile.lr == 0.15 and profile.crop_size == 32 and profile.seeds == (0, 1)
    assert profile.test_per_class is None and profile.epochs == profiles.PROFILES["accuracy"]["cpu"].epochs
    assert profile.hydra_overrides[-1] == "++method_kwargs.sk_epsilon=0.02"
    assert seen["k"]["methods"] == ["swav"]
    for bad, needle in (("nope=1", "FIELD one of"), ("lr=fast", "lr takes a float")):
        with pytest.raises(SystemExit):
            accuracy.main(["--set", bad])
        assert needle in capsys.readouterr().err


def test_cpu_profile_augmentation_reaches_the_composed_config(tmp_path):
    """The cpu profile's milder augmentation (its ``hydra_overrides``) is what the pretraining
    config of both methods holds; everything else stays the shipped recipe."""
    profile = profiles.PROFILES["accuracy"]["cpu"]
    for method in accuracy.METHODS:
        cfg = runs.pretrain_config(profile, method, 0, tmp_path / "train", tmp_path / "ckpt",
                                       "image_folder")
        aug = cfg.augmentations[0]
        assert (aug.color_jitter.brightness, aug.color_jitter.contrast,
                aug.color_jitter.saturation, aug.color_jitter.hue) == (0.4, 0.4, 0.4, 0.1)
        assert aug.gaussian_blur.prob == 0.0 and aug.rrc.crop_min_scale == 0.3
        assert aug.crop_size == profile.crop_size and aug.grayscale.prob == 0.2
        assert cfg.method == method and cfg.max_epochs == profile.epochs
