"""tools/gpu_check.py (`make gpu-check`): a clear "no GPU" line without one; its comparison code on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.py"


def test_without_a_gpu_it_says_so_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hide any GPU: the test asserts the same on every host
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no GPU:") and "--gpus all" in lines[0]


def test_compare_reports_the_worst_tensor():
    import torch

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    a = {"x": torch.tensor([1.0, -2.0]), "y": torch.tensor([4.0])}
    b = {"x": torch.tensor([1.0, -2.0 + 2e-6]), "y": torch.tensor([4.0 + 4e-3])}
    diff, where = gpu_check.compare(a, b)
    assert where == "y" and diff == pytest.approx(1e-3, rel=1e-3)
    assert gpu_check.compare(a, {"x": a["x"]})[0] == float("inf")
    assert gpu_check.compare(a, {"x": torch.tensor([float("nan"), 0.0]), "y": a["y"]}) == (float("inf"), "x")


@pytest.mark.slow
def test_selftest_merges_all_seven_methods_and_evaluates(tmp_path):
    """The whole script on the CPU (CPU vs CPU, scaled-down shapes): ~3 min on 2 cores."""
    proc = subprocess.run([sys.executable, str(SCRIPT), "--selftest", "--layers", "1"], capture_output=True,
                          text=True, timeout=1800, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count(" ok") == 14 and "all merges agree" in proc.stdout
    assert "mean accuracy" in proc.stdout
