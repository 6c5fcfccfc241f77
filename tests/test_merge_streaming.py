"""The streaming engine's kernels against mergekit's own per-tensor code, its TIES selection rule,
the one-pass NaN/Inf check, streamed shards, in-memory merges without disk, and grid mode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from mergekit.merge_methods import merge_tensors  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from repro.errors import MergeError  # noqa: E402
from repro.merge import METHODS, merge_checkpoints, merge_grid  # noqa: E402
from repro.merge.arithmetic import topk_threshold  # noqa: E402
from repro.merge.devices import require_device  # noqa: E402
from repro.merge.elementwise_kernel import CPU_CHUNK, ElementwiseKernel  # noqa: E402
from repro.merge.engine import load_state_dict as state  # noqa: E402
from repro.merge.model_stock_kernel import model_stock_tensor  # noqa: E402

WHOLE = 1 << 62  # the accelerator policy: one chunk per tensor


def inputs(n, shape, dtype, seed, quantize=False):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(shape, generator=g)
    ckpts = [base + 0.05 * torch.randn(shape, generator=g) for _ in range(n)]
    if quantize:  # few distinct magnitudes: many ties at the TIES cut-off
        ckpts = [base + torch.round(c - base, decimals=2) for c in ckpts]
    return base.to(dtype), [c.to(dtype) for c in ckpts]


def stock(method, base, ckpts, **params):
    return merge_tensors([base, *ckpts], method, parameters=params, base_index=0, dtype=torch.float32)


@pytest.mark.parametrize("compiled", [False, True], ids=["torch", "compiled"])
@pytest.mark.parametrize("chunk,workers", [(CPU_CHUNK, 1), (64 * 3, 1), (WHOLE, 1), (64 * 3, 2), (64, 3)])
@pytest.mark.parametrize(
    "n,shape,dtype,weight,normalize,lam",
    [
        (1, (37, 101), torch.float32, 1.0, True, 1.0),
        (2, (300, 1001), torch.bfloat16, 1.0, True, 1.0),
        (5, (130001,), torch.bfloat16, 0.7, False, 0.3),
        (12, (256, 700), torch.bfloat16, 1.0, True, 1.0),
        (12, (64, 99), torch.float16, 0.5, True, 0.1),
    ],
)
def test_task_arithmetic_kernel_equals_mergekit_bitwise(chunk, workers, n, shape, dtype, weight, normalize, lam,
                                                        compiled):
    """Any chunk size and any number of merging threads (runs of chunks merged concurrently), by torch's
    ops or by the compiled pass (bf16 whole chunks; the rest falls back to torch): stock's bits."""
    base, ckpts = inputs(n, shape, dtype, seed=n)
    params = {"weight": weight, "normalize": normalize, "lambda": lam}
    kernel = ElementwiseKernel(METHODS["task_arithmetic"].traits, params, n, torch.device("cpu"), chunk, workers=workers,
                               compiled=compiled)
    ours = kernel.merge(base, ckpts)
    kernel.close()
    assert torch.equal(ours, stock("task_arithmetic", base, ckpts, **params))


def _spread_inputs(n, size, seed):
    """bf16 checkpoints whose task vectors span eight orders of magnitude (the sum's order shows), with
    zero deltas, signed zeros and a partial last chunk."""
    g = torch.Generator().manual_seed(seed)
    base = (0.02 * torch.randn(size, generator=g)).to(torch.bfloat16)
    base[:4] = torch.tensor([-0.0, 0.0, -0.0, 1e-30])
    scales = torch.logspace(-6, 2, n)
    ckpts = []
    for i in range(n):
        noise = torch.randn(size, generator=g) * scales[i] * (torch.rand(size, generator=g) < 0.9)
        ckpts.append((base.float() + noise).to(torch.bfloat16))
    ckpts[0][: size // 10] = base[: size // 10]
    return base, ckpts


@pytest.mark.parametrize("n", [1, 2, 5, 12, 16])
@pytest.mark.parametrize("weight,normalize,lam,out_dtype", [
    (1.0, True, 1.0, torch.bfloat16), (0.3, True, 1.7, torch.bfloat16), (0.7, False, 0.3, torch.float32),
    (1e-9, True, 1.0, torch.bfloat16),
])
def test_compiled_task_arithmetic_stores_torchs_bits(n, weight, normalize, lam, out_dtype):
    """The compiled pass (numba) against the torch path: the same stored bits for bf16 and float32
    output, whatever the weights; the task vector's squared norm equal up to rounding."""
    base, ckpts = _spread_inputs(n, 3 * CPU_CHUNK + 1000, seed=n)
    params = {"weight": weight, "normalize": normalize, "lambda": lam}
    results = []
    for compiled in (False, True):
        kernel = ElementwiseKernel(METHODS["task_arithmetic"].traits, params, n, torch.device("cpu"), CPU_CHUNK, workers=2,
                                   compiled=compiled)
        results.append(kernel.merge_with_norm(base, ckpts, out_dtype))
        kernel.close()
    (torch_out, torch_norm), (compiled_out, compiled_norm) = results
    bits = torch.int16 if out_dtype == torch.bfloat16 else torch.int32
    assert torch.equal(torch_out.view(bits), compiled_out.view(bits))
    assert compiled_norm == pytest.approx(torch_norm, rel=1e-12)


def test_the_compiled_task_arithmetic_is_in_use_and_needs_no_thread_count(monkeypatch):
    """Large bf16 merges take the compiled pass (numba is a dependency); its bits and norm do not depend
    on the number of threads."""
    import repro.merge.compiled_task_arithmetic as compiled_module

    calls = []
    real = compiled_module.task_arithmetic_bf16
    monkeypatch.setattr(compiled_module, "task_arithmetic_bf16", lambda *args: calls.append(1) or real(*args))
    base, ckpts = _spread_inputs(12, 5 * CPU_CHUNK, seed=3)
    params = {"weight": 1.0, "normalize": True, "lambda": 1.0}
    results = []
    for workers in (1, 2, 3):
        kernel = ElementwiseKernel(METHODS["task_arithmetic"].traits, params, 12, torch.device("cpu"), CPU_CHUNK,
                                   workers=workers, compiled=True)
        results.append(kernel.merge_with_norm(base, ckpts, torch.bfloat16))
        kernel.close()
    assert calls
    for merged, norm in results[1:]:
        assert torch.equal(merged.view(torch.int16), results[0][0].view(torch.int16)) and norm == results[0][1]


@pytest.mark.parametrize("chunk,workers", [(CPU_CHUNK, 1), (64 * 5, 1), (WHOLE, 1), (64 * 5, 2), (CPU_CHUNK, 4)])
@pytest.mark.parametrize("n,shape,density,int8", [(3, (300, 1001), 0.1, False), (12, (128, 257), 0.2, True)])
def test_ties_kernel_equals_mergekit_bitwise_without_ties_at_the_cutoff(chunk, workers, n, shape, density, int8):
    base, ckpts = inputs(n, shape, torch.float32, seed=7)
    params = {"weight": 1.0, "density": density, "normalize": True, "lambda": 0.1, "int8_mask": int8}
    kernel = ElementwiseKernel(METHODS["ties"].traits, params, n, torch.device("cpu"), chunk, workers=workers)
    ours = kernel.merge(base, ckpts)
    kernel.close()
    assert torch.equal(ours, stock("ties", base, ckpts, **params))


def stable_topk_mask(magnitude, k):
    """The documented tie rule, independently: a stable descending sort keeps the lowest indices first."""
    order = torch.sort(magnitude.reshape(-1), descending=True, stable=True).indices[:k]
    mask = torch.zeros(magnitude.numel(), dtype=torch.bool)
    mask[order] = True
    return mask


@pytest.mark.parametrize("seed", range(4))
def test_topk_threshold_follows_the_tie_rule_exactly(seed):
    g = torch.Generator().manual_seed(seed)
    for magnitude in (
        torch.randint(0, 7, (50_001,), generator=g).float(),  # heavy ties
        torch.rand(70_000, generator=g),
        torch.cat([torch.zeros(90_000), torch.rand(10_000, generator=g)]),  # sample sees only zeros
    ):
        for k in (1, 17, int(0.1 * magnitude.numel()), magnitude.numel()):
            threshold, cut = topk_threshold(magnitude, k)
            index = torch.arange(magnitude.numel())
            ours = (magnitude > threshold) | ((magnitude == threshold) & (index < cut))
            assert int(ours.sum()) == k
            assert torch.equal(ours, stable_topk_mask(magnitude, k))


@pytest.mark.parametrize("compiled", [False, True], ids=["vectorized", "compiled"])
@pytest.mark.parametrize("chunk,workers", [(CPU_CHUNK, 1), (64 * 3, 1), (64 * 3, 2)])
@pytest.mark.parametrize("shape,density,seed", [((200, 301), 0.1, 3), ((1000, 517), 0.3, 4), ((50_001,), 0.9, 5)])
def test_ties_with_tied_magnitudes_equals_stock_bit_for_bit(shape, density, seed, chunk, workers, compiled,
                                                             monkeypatch):
    """Heavy ties at the trim cut-off: the kept entries are stock's own (its unstable argsort replayed),
    also with the trim rules and runs of chunks computed by several threads, by numpy/torch (small
    tensors) or by the compiled kernels (large ones: here every tensor)."""
    import repro.merge.stock_topk as stock_topk

    monkeypatch.setattr(stock_topk, "COMPILED_FROM", 0 if compiled else 1 << 62)
    base, ckpts = inputs(4, shape, torch.float32, seed=seed, quantize=True)
    params = {"weight": 1.0, "density": density, "normalize": True, "lambda": 0.1, "int8_mask": False}
    kernel = ElementwiseKernel(METHODS["ties"].traits, params, 4, torch.device("cpu"), chunk, workers=workers)
    ours = kernel.merge(base, ckpts)
    assert torch.equal(ours, stock("ties", base, ckpts, **params))
    bf16_base, bf16_ckpts = base.bfloat16(), [c.bfloat16() for c in ckpts]
    ours = kernel.merge(bf16_base, bf16_ckpts)
    kernel.close()
    assert torch.equal(ours, stock("ties", bf16_base, bf16_ckpts, **params))


def _copy_with(source: Path, target: Path, name: str, value: float) -> Path:
    shutil.copytree(source, target)
    tensors = load_file(str(target / "model.safetensors"))
    tensors[name].view(-1)[3] = value
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("where", ["checkpoint-nan", "checkpoint-inf", "base-inf"])
def test_every_method_names_a_non_finite_input_and_leaves_nothing(tiny_llama_world, tmp_path, method, where):
    name = "model.layers.1.self_attn.v_proj.weight"
    value = float("nan") if "nan" in where else float("inf")
    base, ckpts = tiny_llama_world.base, list(tiny_llama_world.checkpoints[:3])
    if where.startswith("base"):
        base = broken = _copy_with(base, tmp_path / "broken", name, value)
    else:
        ckpts[1] = broken = _copy_with(ckpts[1], tmp_path / "broken", name, value)
    (tmp_path / "runs").mkdir()
    with pytest.raises(MergeError) as error:
        merge_checkpoints(base, ckpts, method, out_dir=tmp_path / "runs" / "out")
    assert str(broken) in str(error.value) and name in str(error.value) and "NaN/Inf" in str(error.value)
    assert not list((tmp_path / "runs").iterdir())


def test_in_memory_merge_never_touches_the_disk(tiny_llama_world, tmp_path, monkeypatch):
    import repro.merge.engine as engine
    import repro.merge.tensor_io as tensor_io

    def forbidden(*args, **kwargs):
        raise AssertionError("an in-memory merge wrote to disk")

    monkeypatch.setattr(tensor_io, "ShardWriter", forbidden)
    monkeypatch.setattr(engine, "atomic_directory", forbidden)
    monkeypatch.setattr(engine, "write_model_files", forbidden)
    monkeypatch.setattr(engine, "write_records", forbidden)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    result = merge_checkpoints(tiny_llama_world.base, tiny_llama_world.checkpoints[:3], "ties", out_dir=None)
    assert result.state_dict and not list(tmp_path.iterdir())
    assert all(t.device.type == "cpu" for t in result.state_dict.values())


def test_sharded_output_equals_single_file_output(tiny_qwen3_world, tmp_path):
    base, ckpts = tiny_qwen3_world.base, tiny_qwen3_world.checkpoints[:3]
    merge_checkpoints(base, ckpts, "task_arithmetic", out_dir=tmp_path / "one")
    merge_checkpoints(base, ckpts, "task_arithmetic", out_dir=tmp_path / "many", shard_size_bytes=40_000)
    shards = sorted((tmp_path / "many").glob("model-*.safetensors"))
    assert len(shards) > 2 and not (tmp_path / "many" / "model.safetensors").exists()
    index = json.loads((tmp_path / "many" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {s.name for s in shards}
    one, many = state(tmp_path / "one"), state(tmp_path / "many")
    assert one.keys() == many.keys() == set(index["weight_map"])
    assert all(torch.equal(one[k], many[k]) for k in one)


def test_accelerator_chunk_policy_gives_the_same_bits_on_the_cpu(tiny_llama_world, monkeypatch):
    import repro.merge.streaming as streaming

    base, ckpts = tiny_llama_world.base, tiny_llama_world.checkpoints[:4]
    default = {m: merge_checkpoints(base, ckpts, m, out_dir=None) for m in ("task_arithmetic", "ties")}
    real = streaming.run_pass
    monkeypatch.setattr(streaming, "run_pass", lambda **kw: real(**{**kw, "chunk": WHOLE}))
    for method, expected in default.items():
        whole = merge_checkpoints(base, ckpts, method, out_dir=None)
        assert all(torch.equal(whole.state_dict[k], v) for k, v in expected.state_dict.items())
        assert whole.task_vector_l2 == pytest.approx(expected.task_vector_l2, rel=1e-12)


def test_cuda_is_refused_clearly_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU host
    with pytest.raises(MergeError, match="CUDA is not available"):
        require_device("cuda")
    with pytest.raises(MergeError, match="cpu or cuda"):
        require_device("tpu")


@pytest.mark.parametrize("method", ["task_arithmetic", "ties", "model_stock", "iso_c", "tsv_m", "ties_sb"])
def test_grid_results_equal_merging_each_subset_alone(tiny_llama_world, tmp_path, method):
    base, ckpts = tiny_llama_world.base, tiny_llama_world.checkpoints
    subsets = [(0, 1), (2, 0, 5), (1, 2, 3, 4, 5), (3, 4)]
    results = merge_grid(base, ckpts, subsets, method)
    on_disk = merge_grid(base, ckpts, subsets, method, out_dirs=[tmp_path / f"g{i}" for i in range(len(subsets))])
    for number, subset in enumerate(subsets):
        alone = merge_checkpoints(base, [ckpts[i] for i in subset], method, out_dir=None)
        grid = results[number]
        assert grid.state_dict.keys() == alone.state_dict.keys()
        assert all(torch.equal(grid.state_dict[k], v) for k, v in alone.state_dict.items()), (method, subset)
        assert grid.task_vector_l2 == pytest.approx(alone.task_vector_l2, rel=1e-12)
        saved = state(tmp_path / f"g{number}")
        assert all(torch.equal(saved[k], v) for k, v in alone.state_dict.items())
        record = json.loads((tmp_path / f"g{number}" / "repro_merge.json").read_text())
        assert record["models"] == [str(ckpts[i].absolute()) for i in subset]
        assert on_disk[number].task_vector_l2 == pytest.approx(alone.task_vector_l2, rel=1e-12)


def test_grid_rejects_bad_subsets_all_at_once(tiny_llama_world, tmp_path):
    base, ckpts = tiny_llama_world.base, tiny_llama_world.checkpoints[:3]
    with pytest.raises(MergeError) as error:
        merge_grid(base, ckpts, [(0, 1), (0, 7), (2, 2), (1,)], "model_stock", out_dirs=None)
    message = str(error.value)
    assert "subset 1" in message and "subset 2" in message and "subset 3" in message and "subset 0" not in message


@pytest.mark.parametrize("filter_wise", [False, True])
@pytest.mark.parametrize(
    "n,shape,dtype",
    [(2, (37, 101), torch.float32), (3, (300, 101), torch.bfloat16), (12, (64, 257), torch.bfloat16),
     (5, (1001,), torch.float16), (4, (16, 16), torch.float32)],
)
def test_model_stock_kernel_equals_mergekit_bit_for_bit(n, shape, dtype, filter_wise):
    from repro.merge.group_kernels import GroupKernel, ModelStockKernel
    from repro.merge.input_ids import model_ids

    base, ckpts = inputs(n, shape, dtype, seed=n)
    if shape == (16, 16):  # opposing task vectors: the singular interpolation (t = 0) path
        ckpts = [base + (-1) ** i * (ckpts[0] - base) for i in range(n)]
    before = [c.clone() for c in ckpts]
    params = {"filter_wise": filter_wise}
    stock_kernel = GroupKernel(METHODS["model_stock"], params, model_ids([f"m{i}" for i in range(n + 1)]), torch.device("cpu"))
    expected = stock_kernel.merge(base, ckpts, "w")
    ours = ModelStockKernel(params, torch.device("cpu")).merge(base, ckpts, "w")
    assert ours.dtype == torch.float32 and ours.shape == base.shape
    assert torch.equal(ours, expected)
    for cache in (1, 2, 3, n - 1):  # task vectors formed again in blocks: still stock's bits
        bounded = model_stock_tensor(base, ckpts, filter_wise=filter_wise, device=torch.device("cpu"), cache=cache)
        assert torch.equal(bounded, expected), cache
    assert all(torch.equal(c, b) for c, b in zip(ckpts, before, strict=True))  # inputs untouched


def test_model_stock_holds_a_bounded_number_of_task_vectors(monkeypatch):
    """The cache follows the byte budget (at least 2, at most all), and a merge under a small budget
    allocates only that many float32 task vectors at once."""
    import repro.merge.model_stock_kernel as kernel_module

    cpu = torch.device("cpu")
    assert kernel_module.cache_size(1000, 12, cpu) == 12
    assert kernel_module.cache_size(1 << 28, 12, cpu) == 2
    assert kernel_module.cache_size(1 << 25, 12, cpu) == 8
    assert kernel_module.cache_size(1 << 28, 12, torch.device("meta")) == 12
    base, ckpts = inputs(12, (64, 257), torch.bfloat16, seed=5)
    monkeypatch.setitem(kernel_module.CACHE_BYTES, "cpu", 3 * 4 * base.numel())
    assert kernel_module.cache_size(base.numel(), 12, cpu) == 3
    live, peak = set(), [0]
    real_to = torch.Tensor.to

    def counting_to(tensor, *args, **kwargs):
        result = real_to(tensor, *args, **kwargs)
        if result.dtype == torch.float32 and result.numel() == base.numel():
            live.add(id(result))
            peak[0] = max(peak[0], len(live))
            import weakref

            weakref.finalize(result, live.discard, id(result))
        return result

    monkeypatch.setattr(torch.Tensor, "to", counting_to)
    merged = model_stock_tensor(base, ckpts, filter_wise=False, device=cpu)
    monkeypatch.undo()
    expected = model_stock_tensor(base, ckpts, filter_wise=False, device=cpu, cache=12)
    assert torch.equal(merged, expected)
    assert peak[0] <= 3 + 2  # the block, one later task vector at a time, and the float32 base


@pytest.mark.parametrize("method", ["task_arithmetic", "ties"])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
def test_norm_computed_in_the_merge_pass_is_the_norm_and_independent_of_threads(method, out_dtype):
    """||merged - base||^2 summed per chunk inside the pass: the float64 norm of the stored tensor, and the
    same bits with 1 or 3 merging threads."""
    base, ckpts = inputs(5, (333, 1001), torch.bfloat16, seed=11)
    params = {"weight": 1.0, "density": 0.2, "normalize": True, "lambda": 0.7, "int8_mask": False}
    results = []
    for workers in (1, 3):
        kernel = ElementwiseKernel(METHODS[method].traits, params, 5, torch.device("cpu"), 64 * 7, workers=workers)
        results.append(kernel.merge_with_norm(base, ckpts, out_dtype))
        kernel.close()
    (merged, norm_sq), (merged3, norm_sq3) = results
    assert torch.equal(merged, merged3) and norm_sq == norm_sq3
    expected = float(((merged.double() - base.double()) ** 2).sum())
    assert norm_sq == pytest.approx(expected, rel=1e-6) and norm_sq > 0
    poisoned = [ckpts[0].clone(), *ckpts[1:]]
    poisoned[0].view(-1)[5] = float("inf")
    kernel = ElementwiseKernel(METHODS["task_arithmetic"].traits, params, 5, torch.device("cpu"), 64 * 7, workers=2)
    _, bad = kernel.merge_with_norm(base, poisoned, out_dtype)
    kernel.close()
    assert bad != bad or bad == float("inf")  # the engine turns this into an error naming the checkpoint


def test_trim_rule_compiled_and_torch_paths_agree_bit_for_bit():
    """TrimRule.apply: the compiled pass (CPU, float32, contiguous) and torch's ops (any other tensor)
    zero the same entries, with the same signed zeros."""
    from repro.merge.arithmetic import TrimRule, kept_ties

    g = torch.Generator().manual_seed(3)
    base = torch.randn(50_000, generator=g).bfloat16().float()
    delta = (base + 0.01 * torch.randn(50_000, generator=g)).bfloat16().float() - base
    rule = TrimRule(*kept_ties(delta.abs(), 5_000), compiled=True)
    assert rule.tied.numel() > 1  # ties at the cut-off, as in bf16 checkpoints
    for start in (0, 12_345):
        chunk = delta[start : start + 20_000]
        compiled = chunk.clone()
        rule.apply(compiled, start)
        strided = torch.stack([chunk, chunk], dim=1)[:, 0]  # not contiguous: torch's path
        assert not strided.is_contiguous()
        rule.apply(strided, start)
        assert torch.equal(compiled.view(torch.int32), strided.contiguous().view(torch.int32))
        assert int((compiled != 0).sum()) < chunk.numel() // 5


@pytest.mark.parametrize("method", ["ties", "ties_sb"])
def test_a_grid_pass_finds_each_checkpoints_trim_rule_once_per_tensor(tiny_llama_world, monkeypatch, method):
    """TIES' trim rule of a checkpoint depends on the checkpoint, the tensor and the density only: a grid
    pass computes it once per (tensor, checkpoint) and reuses it in every other subset holding that
    checkpoint (the merged bits are those of merging each subset alone: the test above)."""
    import repro.merge.streaming as streaming
    from repro.merge.arithmetic import TrimRuleCache

    caches = []

    class Recording(TrimRuleCache):
        def __init__(self):
            super().__init__()
            caches.append(self)

    monkeypatch.setattr(streaming, "TrimRuleCache", Recording)
    base, ckpts = tiny_llama_world.base, tiny_llama_world.checkpoints
    subsets = [(0, 1), (2, 0, 5), (1, 2, 3, 4, 5), (3, 4)]
    merge_grid(base, ckpts, subsets, method)
    (cache,) = caches
    trimmed = len([name for name, tensor in state(base).items() if tensor.is_floating_point()])
    assert cache.found == trimmed * len(set().union(*subsets))
    assert cache.reused == trimmed * sum(len(s) for s in subsets) - cache.found
    merge_checkpoints(base, [ckpts[0], ckpts[1]], method, out_dir=None)  # a single merge: no pass cache
    assert len(caches) == 1
