"""The controls campaign (``python3 -m benchmarks controls``) end to end on the tiny profile:
variants side by side as processes, t-tests, mechanism metrics, resume, the gpu profile's
configs."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import control_variants, controls, controls_tables, profiles, runs
from benchmarks.campaign import run_parallel
from benchmarks import data as bench_data
from benchmarks.__main__ import main as bench_main
from tests.test_benchmarks import REPO, _cifar_dir, _csv

VARIANTS = ["swav", "swav_scaca (default)", "ca_mask=uniform"]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    base = tmp_path_factory.mktemp("controls")
    data = bench_data.sample_cifar(_cifar_dir(), base / "data", train_per_class=8,
                                 test_per_class=4)
    argv = ["controls", "--profile", "tiny", "--out", str(base / "results"), "--data-root",
            str(data), "--work-dir", str(base / "work"), "--variants", *VARIANTS,
            "--seeds", "2"]
    bench_main([*argv, "--jobs", "2"])
    return {"argv": argv, "dir": base / "results" / "tiny", "work": base / "work"}


def test_tables_have_every_variant_with_seeds_tests_and_metrics(campaign):
    columns, rows = _csv(campaign["dir"] / "controls.csv")
    assert columns == controls_tables.CSV_COLUMNS
    by_variant = {r["variant"]: r for r in rows}
    assert list(by_variant) == ["random init", *VARIANTS]
    assert [by_variant[v]["n"] for v in VARIANTS] == ["2", "2", "2"]
    assert by_variant["random init"]["n"] == "1"
    default = by_variant["swav_scaca (default)"]
    assert default["knn20_vs_swav"].endswith(("(yes)", "(no)"))
    assert default["knn20_vs_uniform"].endswith(("(yes)", "(no)"))
    assert 0 < float(default["entropy"]) <= 1 and float(default["sensitivity"]) >= 0
    uniform = by_variant["ca_mask=uniform"]
    assert float(uniform["entropy"]) == pytest.approx(1.0)
    assert float(uniform["sensitivity"]) == 0
    assert by_variant["swav"]["entropy"] == ""  # the host's swav has no mask
    table = (campaign["dir"] / "controls.md").read_text()
    assert "Not run yet:** `ca_pairing=random`" in table
    assert (campaign["dir"] / "controls.png").stat().st_size > 10_000
    for variant in ("swav_scaca__default", "ca_mask_uniform"):  # a mask grid per variant
        assert (campaign["dir"] / f"masks-{variant}.png").stat().st_size > 10_000
    assert not (campaign["dir"] / "masks-swav.png").exists()


def test_run_files_hold_the_metrics_per_epoch_and_the_variant_s_config(campaign):
    run = json.loads((campaign["dir"] / "control_runs" / "ca_mask_uniform-seed1.json")
                     .read_text())
    assert run["variant"] == "ca_mask=uniform" and run["seed"] == 1
    for key in control_variants.CURVES:
        assert len(run[f"{key}_per_epoch"]) == 1, key
    args = json.loads(
        (Path(run["checkpoint"]).parent / "args.json").read_text())
    assert args["method_kwargs"]["ca_mask"] == "uniform"
    assert args["backbone"]["name"] == "wide_resnet28w2"
    assert (campaign["work"] / "logs" / "ca_mask_uniform-seed1.log").exists()


def test_a_rerun_skips_finished_runs_and_resumes_an_unfinished_one(campaign):
    run_file = campaign["dir"] / "control_runs" / "swav-seed0.json"
    run_file.unlink()  # as if the process stopped after the pretraining, before the result
    result = subprocess.run([sys.executable, "-m", "benchmarks", *campaign["argv"]], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count(": start") == 1  # only swav seed 0
    assert "Resuming from previous checkpoint" in result.stdout + result.stderr
    assert json.loads(run_file.read_text())["variant"] == "swav"


def test_bad_only_and_jobs_fail_clearly(campaign):
    with pytest.raises(SystemExit):
        controls.main([*campaign["argv"][1:], "--only", "nope@0"])
    with pytest.raises(SystemExit):
        controls.main([*campaign["argv"][1:], "--jobs", "0"])


def test_gpu_profile_configs_build_every_variant(tmp_path):
    from omegaconf import OmegaConf
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS

    profile = profiles.PROFILES["controls"]["gpu"]
    for variant, (method, overrides, _) in control_variants.VARIANTS.items():
        varied = dataclasses.replace(profile, hydra_overrides=profile.hydra_overrides + overrides)
        cfg = runs.pretrain_config(varied, method, 0, tmp_path, tmp_path / "c",
                                       "image_folder")
        OmegaConf.set_struct(cfg, False)
        cfg = parse_cfg(cfg)
        assert cfg.precision == "16-mixed" and cfg.backbone.name == "wide_resnet28w2"
        assert cfg.augmentations[0].crop_size == 32 and cfg.optimizer.batch_size == 256
        model = METHODS[method](cfg)
        for override in overrides:
            key, value = override.split(".", 1)[1].split("=")
            assert str(cfg.method_kwargs[key]) == value
            if key in ("ca_mask", "ca_keys", "ca_response"):
                assert getattr(model.ca_head, key[3:]) == value


def test_attention_rows_flag_alive_masks_against_the_references(campaign):
    from benchmarks import attention

    assert attention.alive(0.85, 0.3, 0.5) == "yes"
    assert attention.alive(0.95, 0.3, 0.5) == "no"  # near uniform
    assert attention.alive(0.85, 0.2, 0.5) == "no"  # attends, but not to the partner
    assert attention.alive(None, None, None) == "n/a"
    runs = controls_tables.load_runs(campaign["dir"])
    rows = {r["variant"]: r for r in attention.rows_of(runs, seed=0)}
    assert list(rows) == ["random init", "swav", "ca_mask=uniform", "swav_scaca (default)"]
    default, swav = rows["swav_scaca (default)"], rows["swav"]
    assert default["d_knn20_swav"] == pytest.approx(default["knn20_top1"] - swav["knn20_top1"])
    assert rows["ca_mask=uniform"]["alive"] == "n/a" and default["alive"] in ("yes", "no")
    assert attention.write_tables(campaign["dir"]) is not None
    assert "Not run yet:** `ca_keys=features`" in (campaign["dir"] / "attention.md").read_text()


def test_gpu_profile_runs_side_by_side_on_cpu_with_a_tiny_budget(campaign, tmp_path):
    """The device call's command (``--profile gpu --jobs N``), only the data, epochs and batch
    shrunk: the gpu profile's own settings otherwise (CPU settings replace mixed precision)."""
    data = campaign["argv"][campaign["argv"].index("--data-root") + 1]
    bench_main(["controls", "--profile", "gpu", "--out", str(tmp_path / "results"),
                "--data-root", data, "--work-dir", str(tmp_path / "work"), "--variants", "swav",
                "swav_scaca (default)", "--seeds", "1", "--jobs", "2", "--set", "epochs=1",
                "--set", "train_per_class=8", "--set", "test_per_class=4", "--set",
                "batch_size=16", "--set", "linear_epochs=2"])
    _, rows = _csv(tmp_path / "results" / "gpu" / "controls.csv")
    assert [r["variant"] for r in rows] == ["random init", "swav", "swav_scaca (default)"]
    run = json.loads((tmp_path / "results" / "gpu" / "control_runs" /
                      "swav_scaca__default-seed0.json").read_text())
    assert run["settings"]["backbone"] == "wide_resnet28w2" and run["train_images"] == 80
    assert "precision=16-mixed" in run["settings"]["hydra_overrides"]


def test_an_interrupt_stops_the_side_by_side_runs(tmp_path, monkeypatch):
    """SIGTERM (what ``timeout`` sends) reaches the campaign: its running children are stopped,
    no queued run starts, and the interrupt propagates (a device run once hung here)."""
    import os
    import signal
    import threading
    import time

    started = []
    real_popen = subprocess.Popen

    def sleeper(cmd, **kwargs):  # a run that would take a minute
        child = real_popen([sys.executable, "-c", "import time; time.sleep(60)"], **kwargs)
        started.append(child)
        return child

    monkeypatch.setattr(subprocess, "Popen", sleeper)
    handler = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    begin = time.time()
    with pytest.raises(KeyboardInterrupt):
        run_parallel([("swav", s) for s in range(4)], 2, [], tmp_path / "logs")
    timer.cancel()
    assert time.time() - begin < 40
    assert len(started) == 2  # the two queued runs never started
    assert all(child.poll() is not None for child in started)
    assert signal.getsignal(signal.SIGTERM) == handler  # restored
