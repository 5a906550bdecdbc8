"""The overhead benchmark script stays runnable (tiny setting; CI does not run it full size)."""

import csv

from benchmarks.overhead import main


def test_overhead_benchmark_writes_its_tables(tmp_path):
    main(["--tiny", "--settings", "resnet18-cifar-32px", "--out", str(tmp_path)])
    rows = list(csv.DictReader((tmp_path / "overhead.csv").open()))
    methods = [r["method"] for r in rows]
    assert methods[:3] == ["swav", "swav_scaca", "ratio scaca/swav"]
    swav, scaca, ratio = rows[:3]
    assert float(ratio["step_s_median"]) > 0
    assert float(scaca["memory_MiB"]) > float(swav["memory_MiB"])  # the add-on's weights and maps
    md = (tmp_path / "overhead.md").read_text()
    assert "- commit:" in md and "- machine:" in md and "| ratio scaca/swav |" in md
