"""Messy inputs: extra vocabulary rows, NaN, missing or misshapen tensors, bad requests, bf16 bases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file, save_file  # noqa: E402

from repro.errors import MergeError  # noqa: E402
from repro.merge import merge_checkpoints  # noqa: E402
from repro.merge.engine import load_state_dict as state  # noqa: E402


@pytest.fixture(scope="module")
def messy_world(tmp_path_factory):
    """A llama world whose 2nd checkpoint has 16 extra vocabulary rows."""
    from repro.worlds.tiny import build_tiny_world

    return build_tiny_world(
        tmp_path_factory.mktemp("messy"), "llama", n_checkpoints=2, seed=5, extra_vocab_rows={2: 16}
    )


def test_extra_vocabulary_rows_are_truncated_and_logged(messy_world, tmp_path):
    result = merge_checkpoints(
        messy_world.base, messy_world.checkpoints, "task_arithmetic", out_dir=tmp_path / "m"
    )
    rows = {(t["tensor"], t["rows"], t["base_rows"]) for t in result.vocab_truncations}
    assert rows == {("model.embed_tokens.weight", 336, 320), ("lm_head.weight", 336, 320)}
    assert all(t["checkpoint"] == str(messy_world.checkpoints[1]) for t in result.vocab_truncations)
    record = json.loads((tmp_path / "m" / "repro_merge.json").read_text())
    assert len(record["vocab_truncations"]) == 2
    merged, a, b = state(tmp_path / "m"), state(messy_world.checkpoints[0]), state(messy_world.checkpoints[1])
    base = state(messy_world.base)
    expected = (
        base["lm_head.weight"]
        + (
            (a["lm_head.weight"] - base["lm_head.weight"])
            + (b["lm_head.weight"][:320] - base["lm_head.weight"])
        )
        / 2
    )
    torch.testing.assert_close(merged["lm_head.weight"], expected, rtol=0, atol=1e-6)


def assert_nothing_left(parent: Path):
    assert not [p for p in parent.iterdir() if p.name.startswith(".out")], "temporary output left behind"
    assert not (parent / "out").exists()


def test_vocabulary_policy_error_names_checkpoint_and_tensor(messy_world, tmp_path):
    with pytest.raises(MergeError) as error:
        merge_checkpoints(
            messy_world.base,
            messy_world.checkpoints,
            "ties",
            out_dir=tmp_path / "out",
            vocab_mismatch="error",
        )
    assert str(messy_world.checkpoints[1]) in str(error.value) and "lm_head.weight" in str(error.value)
    assert_nothing_left(tmp_path)


def _broken_copy(source: Path, target: Path, edit) -> Path:
    shutil.copytree(source, target)
    tensors = load_file(str(target / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda t: t["model.layers.1.mlp.up_proj.weight"].view(-1).__setitem__(5, float("nan")), "NaN"),
        (lambda t: t.pop("model.layers.0.self_attn.o_proj.weight"), "missing"),
        (lambda t: t.__setitem__("model.layers.1.mlp.down_proj.weight", torch.zeros(64, 96)), "shape"),
    ],
    ids=["nan", "missing", "shape"],
)
def test_bad_inputs_fail_with_one_clear_error_and_no_output(tiny_llama_world, tmp_path, edit, needle):
    broken = _broken_copy(tiny_llama_world.checkpoints[1], tmp_path / "broken", edit)
    (tmp_path / "runs").mkdir()
    with pytest.raises(MergeError) as error:
        merge_checkpoints(
            tiny_llama_world.base,
            [tiny_llama_world.checkpoints[0], broken],
            "tsv_m",
            out_dir=tmp_path / "runs" / "out",
        )
    message = str(error.value)
    assert needle in message and str(broken) in message
    assert "model.layers" in message
    assert_nothing_left(tmp_path / "runs")


def test_bad_requests_are_merge_errors(tiny_llama_world, tmp_path):
    base, ckpts = tiny_llama_world.base, tiny_llama_world.checkpoints
    with pytest.raises(MergeError, match="did you mean 'tsv_m'"):
        merge_checkpoints(base, ckpts[:2], "tsvm", out_dir=tmp_path / "x")
    with pytest.raises(MergeError, match="beta"):
        merge_checkpoints(base, ckpts[:2], "ties_sb", {"beta": "lots"}, out_dir=tmp_path / "x")
    with pytest.raises(MergeError, match="listed twice"):
        merge_checkpoints(base, [ckpts[0], ckpts[0]], "ties", out_dir=tmp_path / "x")
    with pytest.raises(MergeError, match="at least 2"):
        merge_checkpoints(base, ckpts[:1], "model_stock", out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_bfloat16_base_gives_bfloat16_output(tiny_llama_world, tmp_path):
    def to_bf16(tensors):
        for name in tensors:
            tensors[name] = tensors[name].to(torch.bfloat16)

    base = _broken_copy(tiny_llama_world.base, tmp_path / "base16", to_bf16)
    ckpts = [
        _broken_copy(c, tmp_path / f"c{i}", to_bf16) for i, c in enumerate(tiny_llama_world.checkpoints[:2])
    ]
    result = merge_checkpoints(base, ckpts, "task_arithmetic", out_dir=tmp_path / "m")
    assert result.out_dtype == "bfloat16"
    merged = state(tmp_path / "m")
    assert all(t.dtype == torch.bfloat16 for t in merged.values())
    name = "model.layers.0.mlp.up_proj.weight"
    b, c0, c1 = (state(p)[name].float() for p in (base, *ckpts))
    assert torch.equal(merged[name], (b + ((c0 - b) + (c1 - b)) / 2).to(torch.bfloat16))


def test_a_truncating_merge_is_reproduced_by_mergekit_yaml(messy_world, tmp_path):
    from repro.cli import main as repro_main

    merge_checkpoints(messy_world.base, messy_world.checkpoints, "iso_c", out_dir=tmp_path / "a")
    config = tmp_path / "a" / "repro_merge.yaml"
    assert "--unsafe-truncate-embeddings" in config.read_text()
    assert (
        repro_main(["mergekit-yaml", str(config), str(tmp_path / "b"), "--unsafe-truncate-embeddings"]) == 0
    )
    first, second = state(tmp_path / "a"), state(tmp_path / "b")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
