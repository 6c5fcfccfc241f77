"""End-to-end merges of tiny Llama / Qwen3 worlds through `merge_checkpoints` (offline)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")


from repro.cli import main as repro_main  # noqa: E402
from repro.merge import METHODS, SvdCache, merge_checkpoints  # noqa: E402
from repro.merge.engine import load_state_dict as state  # noqa: E402


@pytest.mark.parametrize("method", ["task_arithmetic", "ties", "model_stock"])
def test_stock_methods_equal_stock_mergekit_bitwise(tiny_world, method, tmp_path):
    from mergekit.merge_methods import merge_state_dicts

    models = list(tiny_world.checkpoints[:3])
    result = merge_checkpoints(tiny_world.base, models, method, out_dir=tmp_path / "ours")
    params = {k: v for k, v in result.params.items()}
    stock = merge_state_dicts(
        [state(tiny_world.base)] + [state(m) for m in models],
        method,
        parameters=params,
        base=0,
        dtype=torch.float32,
        out_dtype=torch.float32,
    )
    ours = state(tmp_path / "ours")
    assert ours.keys() == stock.keys()
    for name in stock:
        assert torch.equal(ours[name], stock[name]), name


def test_paper_parameters_reach_mergekit(tiny_llama_world, tmp_path):
    result = merge_checkpoints(
        tiny_llama_world.base, tiny_llama_world.checkpoints[:2], "ties", out_dir=tmp_path / "m"
    )
    config = (tmp_path / "m" / "repro_merge.yaml").read_text()
    import yaml

    parsed = yaml.safe_load(config)
    assert parsed["merge_method"] == "ties"
    assert parsed["parameters"] == {"normalize": True, "lambda": 0.1, "int8_mask": False}
    assert all(m["parameters"] == {"weight": 1.0, "density": 0.1} for m in parsed["models"])
    assert parsed["dtype"] == "float32" and parsed["out_dtype"] == "float32"
    assert result.params["lambda"] == 0.1


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_gives_a_loadable_model_and_records_its_norm(tiny_llama_world, method, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / method
    result = merge_checkpoints(tiny_llama_world.base, tiny_llama_world.checkpoints[:3], method, out_dir=out)
    record = json.loads((out / "repro_merge.json").read_text())
    assert record["method"] == method and record["params"] == result.params
    merged, base = state(out), state(tiny_llama_world.base)
    expected = sum(float(((merged[k].float() - base[k].float()) ** 2).sum()) for k in base) ** 0.5
    assert result.task_vector_l2 == pytest.approx(expected, rel=1e-6)
    assert record["task_vector_l2"] == pytest.approx(expected, rel=1e-6)
    assert result.task_vector_l2 > 0
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        logits = model(torch.tensor([[1, 40, 41, 42]])).logits
    assert logits.shape == (1, 4, 320) and bool(torch.isfinite(logits).all())


@pytest.mark.parametrize("method", ["tsv_m", "ties_sb"])
def test_mergekit_yaml_reproduces_a_saved_merge(tiny_qwen3_world, method, tmp_path):
    merge_checkpoints(tiny_qwen3_world.base, tiny_qwen3_world.checkpoints[:3], method, out_dir=tmp_path / "a")
    code = repro_main(["mergekit-yaml", str(tmp_path / "a" / "repro_merge.yaml"), str(tmp_path / "b")])
    assert code == 0
    first, second = state(tmp_path / "a"), state(tmp_path / "b")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_in_memory_merge_returns_the_tensors_it_would_save(tiny_llama_world, tmp_path):
    models = tiny_llama_world.checkpoints[:2]
    saved = merge_checkpoints(tiny_llama_world.base, models, "iso_c", out_dir=tmp_path / "m")
    memory = merge_checkpoints(tiny_llama_world.base, models, "iso_c", out_dir=None)
    assert memory.out_dir is None and memory.task_vector_l2 == saved.task_vector_l2
    on_disk = state(tmp_path / "m")
    assert all(torch.equal(memory.state_dict[k], on_disk[k]) for k in on_disk)


def test_svd_cache_computes_each_checkpoint_once_and_changes_no_bit(tiny_llama_world, tmp_path):
    cache = SvdCache(directory=tmp_path / "cache")
    ckpts = tiny_llama_world.checkpoints
    first = merge_checkpoints(
        tiny_llama_world.base, ckpts[:3], "tsv_m", out_dir=tmp_path / "a", svd_cache=cache
    )
    matrices = first.svd_cache_stats["computed"] // 3
    assert matrices == 2 * 7  # 2 layers x 7 projection matrices
    again = merge_checkpoints(
        tiny_llama_world.base, ckpts[1:4], "tsv_m", out_dir=tmp_path / "b", svd_cache=cache
    )
    assert again.svd_cache_stats == {"computed": matrices, "memory_hits": 2 * matrices, "disk_hits": 0}
    merge_checkpoints(tiny_llama_world.base, ckpts[1:4], "tsv_m", out_dir=tmp_path / "c")
    cached, fresh = state(tmp_path / "b"), state(tmp_path / "c")
    assert all(torch.equal(cached[k], fresh[k]) for k in fresh)
    other_process = SvdCache(directory=tmp_path / "cache")  # disk entries are shared
    merge_checkpoints(
        tiny_llama_world.base, ckpts[:2], "tsv_m", out_dir=tmp_path / "d", svd_cache=other_process
    )
    assert other_process.stats.computed == 0 and other_process.stats.disk_hits == 2 * matrices


def test_repro_merge_command(tiny_llama_world, tmp_path, capsys):
    args = [
        "merge",
        "--base",
        str(tiny_llama_world.base),
        "--method",
        "task_arithmetic_sb",
        "--set",
        "beta=0.3",
    ]
    args += [x for c in tiny_llama_world.checkpoints[:2] for x in ("--model", str(c))]
    assert repro_main(args + ["--out", str(tmp_path / "m")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["params"]["beta"] == 0.3 and summary["task_vector_l2"] > 0
    assert repro_main(args[:-2] + ["--set", "gamma=1", "--out", str(tmp_path / "n")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "gamma" in err[0]


def test_subspace_boosting_reaches_only_projection_matrices_in_a_real_merge(tiny_qwen3_world, tmp_path):
    base, ckpts = tiny_qwen3_world.base, tiny_qwen3_world.checkpoints[:3]
    merge_checkpoints(base, ckpts, "task_arithmetic_sb", out_dir=tmp_path / "sb")
    merge_checkpoints(base, ckpts, "task_arithmetic", {"normalize": True}, out_dir=tmp_path / "ta")
    boosted, plain = state(tmp_path / "sb"), state(tmp_path / "ta")
    projections = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    for name in plain:
        if any(f".{p}.weight" in name for p in projections):
            assert not torch.allclose(boosted[name], plain[name], atol=1e-6), name
        else:  # norms (incl. Qwen3's q_norm / k_norm), embeddings, LM head
            assert torch.equal(boosted[name], plain[name]), name


def _bf16_copy(source, target):
    """A copy of a tiny checkpoint with its weights stored as bfloat16."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    for path in target.glob("*.safetensors"):
        tensors = {name: t.to(torch.bfloat16) for name, t in load_file(str(path)).items()}
        save_file(tensors, str(path), metadata={"format": "pt"})
    config = json.loads((target / "config.json").read_text())
    config["torch_dtype"] = "bfloat16"
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_compiled_task_arithmetic_merge_equals_stock_mergekit_bitwise(tiny_llama_world, tmp_path, monkeypatch):
    """A whole bf16 merge through the compiled TA pass (forced on, small chunks so that tiny tensors have
    whole chunks): stock mergekit's tensors bit for bit, and the norm of the torch path."""
    from mergekit.merge_methods import merge_state_dicts

    import repro.merge.compiled_task_arithmetic as compiled_module
    import repro.merge.stock_topk as stock_topk
    import repro.merge.streaming as streaming

    base = _bf16_copy(tiny_llama_world.base, tmp_path / "base")
    models = [_bf16_copy(m, tmp_path / f"m{i}") for i, m in enumerate(tiny_llama_world.checkpoints[:4])]
    monkeypatch.setattr(streaming, "CPU_CHUNK", 64 * 3)
    torch_path = merge_checkpoints(base, models, "task_arithmetic", out_dir=None)
    calls = []
    real = compiled_module.task_arithmetic_bf16
    monkeypatch.setattr(compiled_module, "task_arithmetic_bf16", lambda *args: calls.append(1) or real(*args))
    monkeypatch.setattr(stock_topk, "TASK_ARITHMETIC_COMPILED_FROM", 0)
    result = merge_checkpoints(base, models, "task_arithmetic", out_dir=tmp_path / "ours")
    assert calls
    stock = merge_state_dicts(
        [state(base)] + [state(m) for m in models], "task_arithmetic", parameters=dict(result.params), base=0,
        dtype=torch.float32, out_dtype=torch.bfloat16,
    )
    ours = state(tmp_path / "ours")
    assert ours.keys() == stock.keys()
    for name in stock:
        assert ours[name].dtype == torch.bfloat16 and torch.equal(ours[name], stock[name]), name
        assert torch.equal(torch_path.state_dict[name], ours[name]), name
    assert result.task_vector_l2 == pytest.approx(torch_path.task_vector_l2, rel=1e-9)


def test_a_bug_in_a_merge_stays_a_bug_and_file_or_memory_trouble_is_a_merge_error(tiny_llama_world, tmp_path,
                                                                                  monkeypatch):
    """Only what the user can act on (memory, files) becomes a MergeError (exit 2); any other exception
    propagates as it is. Either way nothing is left behind."""
    import errno

    from repro.errors import MergeError
    from repro.merge import streaming

    def failing(error):
        def run_pass(**kwargs):
            raise error
        return run_pass

    args = (tiny_llama_world.base, tiny_llama_world.checkpoints[:2], "task_arithmetic")
    monkeypatch.setattr(streaming, "run_pass", failing(ZeroDivisionError("a bug")))
    with pytest.raises(ZeroDivisionError):
        merge_checkpoints(*args, out_dir=tmp_path / "bug")
    monkeypatch.setattr(streaming, "run_pass", failing(OSError(errno.ENOSPC, "No space left on device", "/x")))
    with pytest.raises(MergeError, match="No space left on device") as caught:
        merge_checkpoints(*args, out_dir=tmp_path / "full")
    assert caught.value.path == "/x"
    monkeypatch.setattr(streaming, "run_pass", failing(torch.OutOfMemoryError("CUDA out of memory")))
    with pytest.raises(MergeError, match="ran out of memory"):
        merge_checkpoints(*args, out_dir=None)
    assert not any(tmp_path.iterdir())
