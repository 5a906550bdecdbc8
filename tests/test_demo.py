"""The main job (``solo-scaca-demo``) end to end at a tiny size: it pretrains through the
plugin's command, prints the one-screen summary with both k-NN accuracies, and draws its
pictures. (Whether it learns at its embedded default is measured, not tested: README.)"""

import re
import subprocess
from pathlib import Path


def test_the_demo_runs_and_prints_its_summary(tmp_path: Path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        ["solo-scaca-demo", "--out", str(out), "--epochs", "1", "--train-per-class", "4",
         "--image-size", "32", "optimizer.batch_size=16", "data.num_workers=0"],
        capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    summary = log[log.index("== solo-scaca demo =="):]
    found = re.search(r"random init ([\d.]+)%, swav_scaca ([\d.]+)% \(([+-][\d.]+) points\)",
                      summary)
    assert found, summary
    random_init, learned, gain = (float(v) for v in found.groups())
    assert abs(learned - random_init - gain) < 0.11
    assert re.search(r"masks +mask-in-box [\d.]+, border share [\d.]+ over \d+ images", summary)
    for name in ("masks.png", "cams.png"):
        assert (out / name).stat().st_size > 1000 and str(out / name) in summary
    assert "pkg_resources" not in log  # the command's quiet logs
