"""Tiny offline model worlds: randomly initialized Llama / Qwen3 causal LMs and "fine-tuned" variants.

A world is a base model plus N checkpoints that share its architecture, saved as ordinary Hugging Face
model directories (config.json, model.safetensors, tokenizer files), so every layer of the kit (merge,
evaluate, runner) treats them exactly like downloaded checkpoints. Nothing here touches the network.

The "fine-tuned" variants are the base plus a seeded task vector: a few low-rank directions (like the
updates that fine-tuning produces) plus small dense noise, with a per-checkpoint scale, so that merges of
different subsets give different models. They are not trained; they exist to exercise the pipeline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from repro.atomic_io import atomic_directory, atomic_write_json
from repro.worlds.tiny_recipe import FAMILIES

# Architecture of every tiny model: small enough that a merge + evaluation takes well under a second.
TINY_DIMS = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=512,
)
SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", "<|eos|>")
VOCAB_SIZE = 320  # 256 byte symbols + specials, padded like real models pad their embedding rows


@dataclass(frozen=True)
class TinyWorld:
    """Paths of one generated world: `base` and `checkpoints[i]` (checkpoint index i + 1)."""

    family: str
    base: Path
    checkpoints: tuple[Path, ...]


def build_tokenizer():
    """A byte-level BPE tokenizer with no merges: every UTF-8 byte is one token. Fully offline."""
    # transformers: deferred so that importing this module does not load it
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for symbol in alphabet:
        vocab[symbol] = len(vocab)
    model = models.BPE(vocab=vocab, merges=[], unk_token=None)
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<|pad|>",
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        model_max_length=TINY_DIMS["max_position_embeddings"],
    )


def tiny_config(family: str, vocab_size: int = VOCAB_SIZE):
    """The transformers config of a tiny model of `family` ("llama" or "qwen3")."""
    # transformers: deferred so that importing this module does not load it
    from transformers import LlamaConfig, Qwen3Config

    common = dict(
        TINY_DIMS,
        vocab_size=vocab_size,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    if family == "llama":
        return LlamaConfig(**common)
    if family == "qwen3":
        return Qwen3Config(**common)
    raise ValueError(f"unknown tiny model family {family!r}; choose one of {', '.join(FAMILIES)}")


def build_base_model(family: str, seed: int, vocab_size: int = VOCAB_SIZE):
    """A randomly initialized tiny causal LM (deterministic for a given family and seed)."""
    # torch, transformers: deferred so that importing this module does not load them
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, vocab_size))
    return model.eval()


def task_vector_state(base_state: dict, seed: int, scale: float, rank: int = 2) -> dict:
    """A seeded "fine-tuning update" for every tensor: low-rank directions for matrices, noise elsewhere."""
    # torch: deferred so that importing this module does not load it
    import torch

    generator = torch.Generator().manual_seed(seed)
    update = {}
    for name in sorted(base_state):
        tensor = base_state[name]
        magnitude = scale * (float(tensor.float().std()) or 1.0)
        if tensor.ndim == 2:
            rows, cols = tensor.shape
            left = torch.randn(rows, rank, generator=generator)
            right = torch.randn(rank, cols, generator=generator)
            low_rank = (left @ right) / rank**0.5
            noise = 0.1 * torch.randn(rows, cols, generator=generator)
            update[name] = magnitude * (low_rank + noise)
        else:
            update[name] = magnitude * torch.randn(tensor.shape, generator=generator)
    return update


def save_model_dir(model, tokenizer, out_dir: Path, metadata: dict | None = None) -> Path:
    """Save model + tokenizer as a Hugging Face directory, atomically (no half-written directory)."""
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if metadata is not None:
            atomic_write_json(tmp / "repro_world.json", metadata)
    return out_dir


def build_tiny_world(
    out_dir: str | Path,
    family: str,
    n_checkpoints: int = 6,
    seed: int = 0,
    scales: tuple[float, ...] | None = None,
    extra_vocab_rows: dict[int, int] | None = None,
) -> TinyWorld:
    """Build (or reuse, if complete) a tiny world under `out_dir`.

    `scales[i]` is the relative size of checkpoint i+1's update (default: 0.05..0.2, varied).
    `extra_vocab_rows[i]` gives checkpoint i (1-based) that many more embedding rows than the base,
    like real in-the-wild checkpoints that extended their tokenizer.
    """
    # torch: deferred so that importing this module does not load it
    import torch

    if family not in FAMILIES:
        raise ValueError(f"unknown tiny model family {family!r}; choose one of {', '.join(FAMILIES)}")
    out_dir = Path(out_dir)
    extra_vocab_rows = extra_vocab_rows or {}
    if scales is None:
        scales = tuple(0.05 + 0.15 * ((7 * i) % n_checkpoints) / max(n_checkpoints - 1, 1) for i in range(n_checkpoints))
    spec = {
        "family": family,
        "n_checkpoints": n_checkpoints,
        "seed": seed,
        "scales": list(scales),
        "extra_vocab_rows": {str(k): v for k, v in sorted(extra_vocab_rows.items())},
        "dims": TINY_DIMS,
        "vocab_size": VOCAB_SIZE,
    }
    world = TinyWorld(
        family=family,
        base=out_dir / "base",
        checkpoints=tuple(out_dir / f"ft-{i + 1:02d}" for i in range(n_checkpoints)),
    )
    spec_path = out_dir / "world.json"
    if spec_path.exists() and json.loads(spec_path.read_text()) == spec and all(
        (p / "model.safetensors").exists() for p in (world.base, *world.checkpoints)
    ):
        return world

    tokenizer = build_tokenizer()
    base = build_base_model(family, seed)
    save_model_dir(base, tokenizer, world.base, {"family": family, "role": "base", "seed": seed})
    base_state = {k: v.detach().clone() for k, v in base.state_dict().items()}
    for index, path in enumerate(world.checkpoints, start=1):
        update = task_vector_state(base_state, seed=seed * 1000 + index, scale=scales[index - 1])
        extra = extra_vocab_rows.get(index, 0)
        model = build_base_model(family, seed, vocab_size=VOCAB_SIZE + extra)
        state = {}
        for name, tensor in base_state.items():
            new = tensor + update[name]
            if extra and new.ndim == 2 and new.shape[0] == VOCAB_SIZE and ("embed" in name or "lm_head" in name):
                pad = 0.02 * torch.randn(extra, new.shape[1], generator=torch.Generator().manual_seed(index))
                new = torch.cat([new, pad], dim=0)
            state[name] = new
        model.load_state_dict(state, strict=True)
        save_model_dir(
            model,
            tokenizer,
            path,
            {"family": family, "role": "checkpoint", "index": index, "seed": seed, "scale": scales[index - 1]},
        )
    atomic_write_json(spec_path, spec)
    return world
