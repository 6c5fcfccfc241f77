"""`make gpu-check`: does the kit give the same merges on a GPU as on the CPU, and does evaluation run there?

On a machine where torch sees a CUDA GPU (e.g. `docker run --gpus all repro make gpu-check`), in one process:
1. builds a tiny Llama family (base + 4 checkpoints, repro.worlds.tiny) and a synthetic model with the
   layer shapes of Llama-3.2-3B (hidden 3072, MLP 8192, 24 heads / 8 key-value heads, head size 128,
   vocabulary 128256, tied embeddings) but only --layers layers, with --checkpoints low-rank "fine-tunes";
2. merges both with every method of configs/paper.yaml (all 7, the paper's parameters) on the CPU and on
   CUDA (float32 output) and compares every tensor: the largest difference relative to the tensor's
   largest magnitude must stay under 1e-5 for the element-wise methods (TA, TIES, Model Stock) and under
   1e-3 for the SVD-based ones (TSV-M, Iso-C, TA+SB, TIES+SB: cuSOLVER and LAPACK differ in the last bits,
   and those differences pass through orthogonalization and spectrum flattening);
3. evaluates the tiny base with lm-eval on the smoke suite on CUDA in float16 (stock HF backend and the
   kit's default shared-context scorer) and on the CPU in float32;
4. prints the timings of every step and exits 1 if any comparison fails.
Without a GPU it prints one "no GPU" line and exits 0; with a driver too old for torch's CUDA build, one line
naming the way out and exits 1. `--selftest` runs the same code on the CPU twice with
scaled-down shapes (for the kit's own tests; it compares nothing across devices).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from repro.method_catalog import EXACT, SPECTRUM, SVD, get_method

ROOT = Path(__file__).resolve().parents[1]
# Llama-3.2-3B (meta-llama/Llama-3.2-3B config.json), fewer layers.
LLAMA_3B_SHAPES = dict(
    hidden_size=3072,
    intermediate_size=8192,
    num_attention_heads=24,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=128256,
    tie_word_embeddings=True,
    rope_theta=500000.0,
    max_position_embeddings=131072,
)
# How a method's CUDA merge is judged against its CPU merge is one of its traits (`device_agreement` in
# repro.method_catalog): EXACT (element-wise arithmetic) within 1e-5, SVD and SPECTRUM within 1e-3.
# SPECTRUM (Subspace Boosting) raises every singular value below the beta cut-off, zeros included: where a
# summed update is rank-deficient (TIES+SB's sparse, sign-elected sum on the tiny family), the basis of the
# raised null space is whatever the SVD returns, and float32 vs float64 SVD on one CPU already moves the
# result by 0.39 (measured). There the devices can only agree on what is defined: the spectrum of
# merged - base.
TOLERANCE = {EXACT: 1e-5, SVD: 1e-3, SPECTRUM: 1e-3}


def no_gpu_line() -> str | None:
    import torch

    if torch.cuda.is_available():
        return None
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    return (f"gpu-check: no GPU: torch {torch.__version__} ({build}) sees no CUDA device; nothing to compare. "
            "Run it on an NVIDIA GPU machine, e.g. `docker run --gpus all repro make gpu-check`.")


def synthetic_family(out: Path, layers: int, checkpoints: int, shapes: dict, seed: int = 0) -> tuple[Path, list[Path]]:
    """A base with `shapes` and `layers` layers (random, bfloat16 like released weights) and low-rank fine-tunes."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, LlamaConfig

    from repro.worlds.tiny import build_tokenizer

    config = LlamaConfig(**shapes, num_hidden_layers=layers, dtype="bfloat16", architectures=["LlamaForCausalLM"])
    with torch.device("meta"):
        names = {k: tuple(v.shape) for k, v in AutoModelForCausalLM.from_config(config).state_dict().items()}
    if config.tie_word_embeddings:
        names.pop("lm_head.weight", None)
    generator = torch.Generator().manual_seed(seed)
    base = {}
    for name, shape in sorted(names.items()):
        if name.endswith("norm.weight"):
            base[name] = (1 + 0.02 * torch.randn(shape, generator=generator)).to(torch.bfloat16)
        else:
            base[name] = (0.02 * torch.randn(shape, generator=generator)).to(torch.bfloat16)
    tokenizer = build_tokenizer()
    dirs = []
    for index in range(checkpoints + 1):
        folder = out / ("base" if index == 0 else f"ft-{index}")
        folder.mkdir(parents=True)
        state = base
        if index:
            state = {}
            for name, tensor in base.items():
                if tensor.ndim == 2:
                    rows, cols = tensor.shape
                    rank = 8
                    left = torch.randn(rows, rank, generator=generator)
                    right = torch.randn(rank, cols, generator=generator)
                    delta = 0.002 * (left @ right) / rank + 0.0005 * torch.randn(rows, cols, generator=generator)
                else:
                    delta = 0.001 * torch.randn(tensor.shape, generator=generator)
                state[name] = (tensor.float() + delta).to(torch.bfloat16)
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
        config.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        dirs.append(folder)
    return dirs[0], dirs[1:]


def paper_methods() -> list[tuple[str, dict]]:
    from repro.facts.config import load_config

    loaded = load_config(ROOT / "configs/paper.yaml", check_suite=False)
    return [(m.name, dict(m.params)) for m in loaded.config.methods]


def compare(reference: dict, other: dict) -> tuple[float, str]:
    """(largest |a - b| / max|a| over all tensors, the tensor where it occurs)."""
    worst, where = 0.0, ""
    if set(reference) != set(other):
        return float("inf"), f"tensor names differ: {sorted(set(reference) ^ set(other))[:3]}"
    for name, ref in reference.items():
        ref32, oth32 = ref.float(), other[name].float().cpu()
        scale = float(ref32.abs().max()) or 1.0
        diff = float((ref32 - oth32).abs().max()) / scale
        if diff != diff:  # NaN
            return float("inf"), name
        if diff > worst:
            worst, where = diff, name
    return worst, where


def spectral_difference(reference: dict, other: dict, base: Path) -> tuple[float, str]:
    """(largest relative difference of the singular values of merged - base over the 2-D tensors, where)."""
    import torch

    from repro.merge.engine import load_state_dict

    base_state = load_state_dict(base)
    worst, where = 0.0, ""
    for name, ref in reference.items():
        if ref.ndim != 2 or name not in base_state:
            continue
        anchor = base_state[name].double()
        ref_s = torch.linalg.svdvals(ref.double() - anchor)
        oth_s = torch.linalg.svdvals(other[name].double().cpu() - anchor)
        diff = float((ref_s - oth_s).abs().max() / (ref_s.max() or 1.0))
        if diff > worst:
            worst, where = diff, name
    return worst, where


def merge_family(label: str, base: Path, models: list[Path], devices: tuple[str, str], methods) -> bool:
    import torch

    from repro.merge.engine import merge_checkpoints

    ok = True
    print(f"\n{label}: {len(models)} checkpoints, merged on {devices[0]} and {devices[1]} (float32 output)")
    print(f"  {'method':22} {devices[0] + ' s':>8} {devices[1] + ' s':>8} {'max rel diff':>13} {'tolerance':>10}  tensor")
    for name, params in methods:
        results, seconds = [], []
        for device in devices:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            result = merge_checkpoints(base, models, name, params, out_dir=None, device=device, out_dtype="float32")
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
            results.append(result.state_dict)
        diff, where = compare(results[0], results[1])
        agreement = get_method(name).traits.device_agreement
        tolerance = TOLERANCE[agreement]
        passed = diff <= tolerance
        verdict = "ok" if passed else "FAIL " + where
        if not passed and agreement == SPECTRUM:  # see TOLERANCE: compare what is defined
            spectral, where = spectral_difference(results[0], results[1], base)
            passed = spectral <= tolerance
            verdict = (f"ok: spectra agree ({spectral:.1e}); raised null-space basis differs" if passed
                       else f"FAIL (spectra {spectral:.1e}) {where}")
        ok &= passed
        print(f"  {name:22} {seconds[0]:8.2f} {seconds[1]:8.2f} {diff:13.2e} {tolerance:10.0e}  {verdict}")
        del results
    return ok


def evaluate_tiny(model_dir: Path, runs: list[tuple[str, str, str]]) -> None:
    """lm-eval on the tiny base: backend "hf" is lm-eval's stock HF model, "shared" the kit's default scorer."""
    from repro.evaluate import evaluate_model
    from repro.facts.suites import get_suite

    suite = get_suite("smoke", ROOT / "configs/suites.yaml")
    print("\nlm-eval on the tiny base, smoke suite:")
    for device, dtype, backend in runs:
        start = time.perf_counter()
        outcome = evaluate_model(model_dir, suite, device=device, dtype=dtype, batch_size="auto",
                                 backend=backend, show_progress=False)
        print(f"  {device:5} {dtype:8} {backend:7} mean accuracy {outcome.average:.4f}  "
              f"in {time.perf_counter() - start:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2, help="layers of the Llama-3.2-3B-shaped model (default 2)")
    parser.add_argument("--checkpoints", type=int, default=2, help="its fine-tunes to merge (default 2)")
    parser.add_argument("--selftest", action="store_true", help="CPU vs CPU with scaled-down shapes (kit tests)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    import torch

    if not args.selftest:
        from repro.runner.driver import driver_problem

        too_old = driver_problem(torch.version.cuda)  # an old driver hides the GPU: say so, not "no GPU"
        if too_old:
            print(f"gpu-check: {too_old}")
            return 1
        line = no_gpu_line()
        if line:
            print(line)
            return 0
        devices = ("cpu", "cuda")
        print(f"gpu-check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
        shapes = LLAMA_3B_SHAPES
        eval_runs = [("cpu", "float32", "hf"), ("cuda", "float16", "hf"), ("cuda", "float16", "shared")]
    else:
        devices = ("cpu", "cpu")
        shapes = {**LLAMA_3B_SHAPES, "hidden_size": 192, "intermediate_size": 512, "num_attention_heads": 6,
                  "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 1024}
        eval_runs = [("cpu", "float32", "hf"), ("cpu", "float32", "shared")]
        print("gpu-check --selftest: CPU vs CPU, scaled-down shapes")
    from repro.worlds.tiny import build_tiny_world

    methods = paper_methods()
    ok = True
    with tempfile.TemporaryDirectory(prefix="repro-gpu-check-") as scratch:
        step = time.perf_counter()
        world = build_tiny_world(Path(scratch) / "tiny", "llama", n_checkpoints=4, seed=3)
        base, models = synthetic_family(Path(scratch) / "llama3b", args.layers, args.checkpoints, shapes)
        print(f"models built in {time.perf_counter() - step:.1f} s")
        ok &= merge_family("tiny Llama family", world.base, list(world.checkpoints), devices, methods)
        ok &= merge_family(f"Llama-3.2-3B shapes, {args.layers} layers", base, models, devices, methods)
        evaluate_tiny(world.base, eval_runs)
    print(f"\ngpu-check: {'all merges agree' if ok else 'SOME MERGES DIFFER'} "
          f"(total {time.perf_counter() - started:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
