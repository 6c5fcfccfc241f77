"""Appendix D geometry: tiny checkpoints with constructed task vectors give the known cosines and layer signs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from repro.errors import RunnerError
from repro.merge.task_vector_geometry import task_vector_geometry
from repro.report.geometry_figures import cosine_matrix, layer_sign_counts

PATTERN = r"(?:^|\.)layers\.(\d+)\."
SHAPES = {
    "model.embed_tokens.weight": (5, 3),
    "model.layers.0.mlp.weight": (4, 3),
    "model.layers.0.norm.weight": (3,),
    "model.layers.1.mlp.weight": (4, 3),
    "model.layers.2.attn.weight": (2, 2),
    "model.norm.weight": (3,),
}


def _deltas(rng):
    """Four task vectors with known relations (per tensor, float32)."""
    d1 = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}
    d2 = {name: -v for name, v in d1.items()}  # exactly opposite: cos -1 everywhere
    d3 = {name: (-v if ".layers.2." in name else v) for name, v in d1.items()}  # layer 2 flipped
    d4 = {}
    for name, v in d1.items():
        if ".layers.0." in name:
            d4[name] = np.zeros_like(v)  # a zero task vector in block 0: cosine undefined -> "zero"
        elif ".layers.1." in name:  # orthogonal to d1 in block 1 (one tensor): |cos| ~ 0 -> "zero"
            r = rng.standard_normal(v.shape).astype(np.float64)
            r -= (r * v).sum() / (v.astype(np.float64) ** 2).sum() * v
            d4[name] = r.astype(np.float32)
        elif ".layers.2." in name:
            d4[name] = 2.0 * v  # same direction, longer: cos +1
        else:
            d4[name] = rng.standard_normal(v.shape).astype(np.float32)
    return [d1, d2, d3, d4]


@pytest.fixture
def constructed(tmp_path):
    rng = np.random.default_rng(0)
    base = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}
    deltas = _deltas(rng)
    (tmp_path / "base").mkdir()
    save_file({k: torch.from_numpy(v) for k, v in base.items()}, tmp_path / "base" / "model.safetensors")
    dirs = []
    for i, delta in enumerate(deltas, start=1):
        directory = tmp_path / f"ft{i}"
        directory.mkdir()
        weights = {k: torch.from_numpy(base[k] + delta[k]) for k in SHAPES}
        if i == 4:  # an extended vocabulary (2 extra embedding rows, truncated like the merge does)
            weights["model.embed_tokens.weight"] = torch.cat([weights["model.embed_tokens.weight"],
                                                              torch.full((2, 3), 100.0)])
        if i == 2:  # sharded, with an index
            names = sorted(weights)
            save_file({k: weights[k] for k in names[:3]}, directory / "model-00001-of-00002.safetensors")
            save_file({k: weights[k] for k in names[3:]}, directory / "model-00002-of-00002.safetensors")
            index = {"weight_map": {k: f"model-0000{1 if k in names[:3] else 2}-of-00002.safetensors" for k in names}}
            (directory / "model.safetensors.index.json").write_text(json.dumps(index))
        else:
            save_file(weights, directory / "model.safetensors")
        dirs.append(directory)
    # The task vectors as they are stored (base + delta rounded to float32, minus base).
    stored = [{k: (base[k] + d[k]) - base[k] for k in SHAPES} for d in deltas]
    return tmp_path / "base", dirs, stored


def _flat(delta, names):
    return np.concatenate([delta[n].astype(np.float64).ravel() for n in names])


@pytest.mark.parametrize("chunk", [5, 1 << 22])  # row slices smaller than a tensor, and whole tensors
def test_constructed_task_vectors_give_the_known_cosines_and_layer_signs(constructed, chunk):
    base_dir, dirs, stored = constructed
    geometry = task_vector_geometry(base_dir, dirs, layer_pattern=PATTERN, labels=["1", "2", "3", "4"],
                                    chunk_elements=chunk)
    assert geometry.checkpoints == ["1", "2", "3", "4"]
    assert sorted(geometry.tensors) == sorted(SHAPES)
    assert sorted(geometry.layers) == [0, 1, 2]
    names = sorted(SHAPES)
    cos = cosine_matrix(geometry.total)
    expected = np.array([[_flat(a, names) @ _flat(b, names) for b in stored] for a in stored])
    norms = np.sqrt(np.diag(expected))
    np.testing.assert_allclose(np.array(cos, dtype=float), expected / np.outer(norms, norms), atol=1e-9)
    assert cos[0][1] == pytest.approx(-1.0, abs=1e-12)
    for i in range(4):
        assert cos[i][i] == pytest.approx(1.0, abs=1e-12)
        assert geometry.total[i][i] == pytest.approx(float(norms[i] ** 2), rel=1e-9)

    layers = {str(i): gram for i, gram in geometry.layers.items()}
    counts = layer_sign_counts(layers, tolerance=1e-6)
    # pair (1, 2): opposite in every block
    assert (counts["positive"][0][1], counts["negative"][0][1], counts["zero"][0][1]) == (0, 3, 0)
    # pair (1, 3): blocks 0 and 1 equal, block 2 flipped
    assert (counts["positive"][0][2], counts["negative"][0][2], counts["zero"][0][2]) == (2, 1, 0)
    # pair (1, 4): block 0 zero vector, block 1 orthogonal (both "zero"), block 2 aligned
    assert (counts["positive"][0][3], counts["negative"][0][3], counts["zero"][0][3]) == (1, 0, 2)
    # symmetric, and every pair's counts add up to the number of blocks
    for i in range(4):
        for j in range(4):
            assert counts["positive"][i][j] == counts["positive"][j][i]
            assert sum(counts[k][i][j] for k in counts) == 3
    block1 = cosine_matrix(geometry.layers[1])
    assert abs(block1[0][3]) < 1e-6 and block1[0][3] is not None
    assert cosine_matrix(geometry.layers[0])[0][3] is None  # undefined: d4 is zero in block 0


def test_tolerance_decides_what_counts_as_zero():
    gram = [[1.0, 1e-4], [1e-4, 1.0]]
    assert layer_sign_counts({"0": gram}, tolerance=1e-6)["positive"][0][1] == 1
    assert layer_sign_counts({"0": gram}, tolerance=1e-3)["zero"][0][1] == 1
    assert math.isclose(cosine_matrix(gram)[0][1], 1e-4)


def test_missing_tensor_and_shape_mismatch_name_checkpoint_and_tensor(constructed, tmp_path):
    base_dir, dirs, _ = constructed
    bad = tmp_path / "bad"
    bad.mkdir()
    save_file({"model.norm.weight": torch.zeros(3)}, bad / "model.safetensors")
    with pytest.raises(RunnerError, match="has no tensor 'model.embed_tokens.weight'"):
        task_vector_geometry(base_dir, [dirs[0], bad], layer_pattern=PATTERN)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    weights = {name: torch.zeros(shape) for name, shape in SHAPES.items()}
    weights["model.layers.1.mlp.weight"] = torch.zeros(4, 4)
    save_file(weights, wrong / "model.safetensors")
    with pytest.raises(RunnerError, match=r"wrong: tensor 'model.layers.1.mlp.weight' has shape \[4, 4\]"):
        task_vector_geometry(base_dir, [wrong], layer_pattern=PATTERN)


def test_repro_geometry_runs_the_geometry_jobs_of_a_config(tmp_path):
    """`repro geometry` on the smoke world: one job per base, stored as a result with Gram matrices."""
    import subprocess
    import sys
    from pathlib import Path

    from repro.plan import JobKind
    from repro.results import ResultsStore

    root = Path(__file__).resolve().parents[1]
    runs = tmp_path / "runs" / "smoke_appendix"
    proc = subprocess.run([sys.executable, "-m", "repro", "geometry", "--config", str(root / "configs/smoke_appendix.yaml"),
                           "--runs-dir", str(runs), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tiny-llama:" in proc.stdout and "tiny-qwen3:" in proc.stdout
    records = [r for r in ResultsStore(runs).iter_results() if r.job.kind is JobKind.GEOMETRY]
    assert len(records) == 2
    for record in records:
        geometry = record.geometry
        assert geometry["checkpoints"] == ["1", "2", "3", "4", "5", "6"]
        assert sorted(geometry["layers"]) == ["0", "1"]  # the tiny models have 2 blocks
        diagonal = [geometry["total"][i][i] for i in range(6)]
        assert all(d > 0 for d in diagonal)
        stored = json.loads(ResultsStore(runs).result_path(record.job.id).read_text())
        assert "average" not in stored and "merge" not in stored and record.packages
    proc = subprocess.run([sys.executable, "-m", "repro", "geometry", "--config", str(root / "configs/smoke.yaml"),
                           "--runs-dir", str(tmp_path / "runs" / "smoke")], capture_output=True, text=True)
    assert proc.returncode == 2 and "no `geometry:` section" in proc.stderr and "Traceback" not in proc.stderr
