"""The methods benchmark (``python3 -m benchmarks methods``) on the tiny profile: both arms of a
host method from its shipped config (DeepClusterV2: its baseline arm is the special one), the
table, and the table rebuilt from run files in the hosts' order."""

import json
from pathlib import Path

from benchmarks import data as bench_data
from benchmarks import methods
from benchmarks.__main__ import main as bench_main
from tests.test_benchmarks import _cifar_dir, _csv


def test_each_arm_runs_from_the_method_s_config_and_lands_in_the_table(tmp_path):
    data = bench_data.sample_cifar(_cifar_dir(), tmp_path / "data", train_per_class=8,
                                   test_per_class=4)
    bench_main(["methods", "--profile", "tiny", "--out", str(tmp_path / "results"),
                "--data-root", str(data), "--work-dir", str(tmp_path / "work"),
                "--methods", "deepclusterv2", "--set", "epochs=2"])
    out = tmp_path / "results" / "tiny"
    runs_dir = out / methods.RUNS_DIR
    runs = {p.stem: json.loads(p.read_text()) for p in runs_dir.glob("*.json")}
    assert set(runs) == {"deepclusterv2-seed0", "deepclusterv2_scaca-seed0", "random_init-seed0"}
    for arm in ("deepclusterv2", "deepclusterv2_scaca"):
        run = runs[f"{arm}-seed0"]
        assert run["arm"] == arm and run["host_method"] == "deepclusterv2"
        args = json.loads((Path(run["checkpoint"]).parent / "args.json").read_text())
        assert args["method"] == "deepclusterv2_scaca"
        assert args["backbone"]["name"] == "wide_resnet28w2"
        if arm == "deepclusterv2":  # the host's method exactly: no add-on
            assert args["method_kwargs"]["ca_weight"] == 0
        else:  # the mechanism metrics per epoch (CSV on every machine)
            assert len(run["train_ca_mask_entropy_per_epoch"]) >= 1
    for arm in ("byol", "byol_scaca"):  # a second host's runs, written after the first's
        run = dict(runs[f"deepclusterv2{arm.removeprefix('byol')}-seed0"], arm=arm,
                   host_method="byol")
        methods.run_file_of(runs_dir, arm, 0).write_text(json.dumps(run))
    methods.rebuild_table(out)
    _, rows = _csv(out / "methods.csv")
    assert [r["method"] for r in rows] == ["deepclusterv2", "byol"]  # the rebuilt table's order
    for row in rows:
        assert row["host_knn20_top1"] and row["scaca_knn20_top1"] and row["delta_knn20_top1"]
        assert 0 < float(row["mask_entropy_last"]) <= 1
    assert "One seed per arm" in (out / "methods.md").read_text()
