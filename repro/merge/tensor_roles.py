"""What a tensor is, by its name: the one place that names tensor roles for every part of the kit.

- VOCABULARY: one axis indexes the tokenizer's vocabulary (token embeddings, LM heads and their biases).
  Checkpoints may extend it (the input checks truncate it to the base's rows); the subspace methods
  (TSV-M, Iso-C) never decompose it and merge it as the mean of the deltas.
- PROJECTION: the attention / MLP projection weight matrices (q, k, v, o, gate, up, down) that Subspace
  Boosting boosts.
- OTHER: everything else (norms, biases, positional embeddings, other matrices).

The rules are written against mergekit's architecture definitions: every tensor mergekit marks with a
`vocabulary_axis` in any architecture it knows is VOCABULARY here and no other tensor is
(tests/test_tensor_roles.py walks all of them, Llama and Qwen3 included). Names only, no torch: the
input checks run on safetensors headers.
"""

from __future__ import annotations

import re
from enum import StrEnum


class TensorRole(StrEnum):
    VOCABULARY = "vocabulary"
    PROJECTION = "projection"
    OTHER = "other"


# Last module name of a vocabulary tensor, wherever it sits (model.embed_tokens, transformer.wte, ...).
VOCABULARY_MODULES = frozenset({
    "embed_tokens", "tok_embeddings", "wte", "embed_in", "embed_out", "word_embeddings", "lm_head",
    "vocab_projector", "output_layer",
})
# Module paths whose tail names a vocabulary tensor only together (lm_head.dense is not one).
VOCABULARY_TAILS = ("lm_head.decoder", "lm_head.linear", "cls.predictions.decoder", "cls.predictions")
# Top-level modules that are vocabulary tensors (InternLM2 `output`, T5 `shared`, Mamba `backbone.embeddings`,
# phi-1's sequential head `layers.<last>.linear`).
VOCABULARY_TOP_LEVEL = re.compile(r"output|shared|backbone\.embeddings|layers\.\d+\.linear")
# Weight matrices Subspace Boosting applies to, each as a whole matrix.
PROJECTION_MODULES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})


def _module(name: str) -> tuple[str, str]:
    """(module path, parameter) of a tensor name: "model.lm_head.weight" -> ("model.lm_head", "weight")."""
    module, _, parameter = name.rpartition(".")
    return (module, parameter) if module else (name, "")


def tensor_role(name: str | None) -> TensorRole:
    """The role of the tensor called `name` (OTHER for an unnamed tensor)."""
    if not name:
        return TensorRole.OTHER
    module, parameter = _module(name)
    last = module.rpartition(".")[2]
    if (last in VOCABULARY_MODULES or module.endswith(VOCABULARY_TAILS)
            or VOCABULARY_TOP_LEVEL.fullmatch(module)):
        return TensorRole.VOCABULARY
    if parameter == "weight" and last in PROJECTION_MODULES:
        return TensorRole.PROJECTION
    return TensorRole.OTHER


def is_vocabulary_tensor(name: str | None) -> bool:
    """Whether one axis of `name` indexes the vocabulary (axis 0 for every architecture mergekit knows)."""
    return tensor_role(name) is TensorRole.VOCABULARY


def is_projection_matrix(name: str | None, ndim: int) -> bool:
    """Whether `name` is an attention / MLP projection weight matrix (what Subspace Boosting boosts)."""
    return ndim == 2 and tensor_role(name) is TensorRole.PROJECTION


def is_decomposed_matrix(name: str | None, ndim: int) -> bool:
    """Whether the subspace methods (TSV-M, Iso-C) decompose `name`: every matrix but a vocabulary one."""
    return ndim == 2 and not is_vocabulary_tensor(name)
