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


def test_boosted_merges_are_compared_by_spectrum_where_the_raised_null_space_is_arbitrary(tmp_path):
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(6, 6, generator=generator)
    save_file({"w": base}, tmp_path / "model.safetensors")
    # the same singular values, two different orthonormal bases of a rank-deficient part (as two SVDs may return)
    u1, _ = torch.linalg.qr(torch.randn(6, 6, generator=generator))
    u2 = u1.clone()
    u2[:, 4:] = u1[:, 4:] @ torch.tensor([[0.6, -0.8], [0.8, 0.6]])
    spectrum = torch.diag(torch.tensor([3.0, 2.0, 1.5, 1.0, 1.0, 1.0]))
    first = {"w": base + u1 @ spectrum @ u1.T}
    second = {"w": base + u2 @ spectrum @ u1.T}
    elementwise, _ = gpu_check.compare(first, second)
    spectral, _ = gpu_check.spectral_difference(first, second, tmp_path)
    assert elementwise > 1e-2 and spectral < 1e-6
    assert gpu_check.spectral_difference(first, {"w": first["w"] * 1.1}, tmp_path)[0] > 1e-3
