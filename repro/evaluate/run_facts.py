"""What an evaluation actually ran with, as lm-eval's own results record it: the seeds set, the batch
size used (after `auto` detection), the device the model ran on, and the tokenizer's identity.

`lm_eval_seeds()` are lm-eval's defaults (`lm_eval.defaults`), the values `simple_evaluate` sets and the
harness sets before every evaluation (`repro.evaluate.harness`); the same dict is recorded, so the
record cannot name other seeds than those set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.evaluate.prepared import tokenizer_fingerprint


def lm_eval_seeds() -> dict[str, int]:
    """random / numpy / torch / few-shot sampler seeds, as lm-eval's record names them."""
    # lm_eval: deferred so that importing this module does not load it
    from lm_eval.defaults import DEFAULT_OTHER_SEED, DEFAULT_RANDOM_SEED

    return {"random_seed": DEFAULT_RANDOM_SEED, "numpy_seed": DEFAULT_OTHER_SEED,
            "torch_seed": DEFAULT_OTHER_SEED, "fewshot_seed": DEFAULT_OTHER_SEED}


def batch_size_used(lm) -> int | list[int] | str | None:
    """The batch size the LM used: the sizes `auto` detected (lm-eval keeps them in `batch_sizes`), else
    the fixed size."""
    detected = sorted(set((getattr(lm, "batch_sizes", None) or {}).values()))
    if detected:
        return detected[0] if len(detected) == 1 else detected
    size = getattr(lm, "batch_size_per_gpu", None)
    return size if size is not None else getattr(lm, "batch_size", None)


def tokenizer_source(name_or_path: str) -> str:
    """Where the tokenizer came from, independent of where the run lives: a hub id as is, a local folder
    as `local:<folder name>` (its content is pinned by the fingerprint; an absolute path would make two
    copies of the same run record different results)."""
    path = Path(name_or_path)
    if name_or_path and (path.is_absolute() or path.exists()):
        return f"local:{path.resolve().name}"
    return name_or_path


def tokenizer_identity(lm) -> dict[str, Any]:
    """Name, class, vocabulary size, special tokens (lm-eval's record) and a content fingerprint."""
    tokenizer = lm.tokenizer

    def token(kind: str) -> list:
        return [getattr(tokenizer, f"{kind}_token", None), getattr(tokenizer, f"{kind}_token_id", None)]

    return {
        "name_or_path": tokenizer_source(str(getattr(tokenizer, "name_or_path", "") or "")),
        "class": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "pad_token": token("pad"),
        "eos_token": token("eos"),
        "bos_token": token("bos"),
        "eot_token_id": getattr(lm, "eot_token_id", None),
        "fingerprint": tokenizer_fingerprint(lm),
    }


def run_facts(lm, seeds: dict[str, int]) -> dict[str, Any]:
    """The facts of one finished evaluation run of `lm`."""
    device = getattr(lm, "device", None)
    return {
        "seeds": dict(seeds),
        "batch_size_used": batch_size_used(lm),
        "device": str(device) if device is not None else None,
        "tokenizer": tokenizer_identity(lm),
    }
