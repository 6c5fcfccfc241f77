"""One module names tensor roles; its vocabulary rule matches mergekit's `vocabulary_axis` in every
architecture mergekit knows, and the input checks and the subspace methods both use it."""

import importlib.resources
import json
import re

import pytest
import torch

from repro.merge import tensor_checks, tensor_roles
from repro.merge.tensor_roles import TensorRole, is_vocabulary_tensor, tensor_role


def _architecture_files():
    folder = importlib.resources.files("mergekit") / "_data" / "architectures"
    return sorted((f for f in folder.iterdir() if f.name.endswith(".json")), key=lambda f: f.name)


def _weights(definition) -> list[tuple[str, bool]]:
    """(name, has a vocabulary axis) of every weight name, alias and tied name in a definition."""
    out = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("name"), str) and "${" not in node.get("name", "").replace(
                    "${layer_index}", "").replace("${num_layers}", ""):
                vocabulary = node.get("vocabulary_axis") is not None
                for name in (node["name"], *node.get("aliases", ()), *node.get("tied_names", ())):
                    name = name.replace("${layer_index}", "3").replace("${num_layers}", "24")
                    out.append((name, vocabulary))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(definition)
    return out


ARCHITECTURES = {f.name.removesuffix(".json"): f for f in _architecture_files()}


def test_mergekit_knows_the_study_architectures():
    assert {"llama", "qwen3", "qwen2", "mistral", "gemma2", "gpt2", "gpt-neox", "phi3"} <= set(ARCHITECTURES)
    assert len(ARCHITECTURES) > 40


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_vocabulary_role_matches_mergekit_vocabulary_axis(architecture):
    weights = _weights(json.loads(ARCHITECTURES[architecture].read_text()))
    assert weights, architecture
    wrong = [(name, vocabulary) for name, vocabulary in weights if is_vocabulary_tensor(name) != vocabulary]
    assert not wrong, f"{architecture}: (name, mergekit says vocabulary) misnamed: {wrong}"


@pytest.mark.parametrize("architecture", ["llama", "qwen3", "mistral", "qwen2"])
def test_projection_role_is_the_seven_attention_and_mlp_matrices(architecture):
    names = [name for name, _ in _weights(json.loads(ARCHITECTURES[architecture].read_text()))]
    projections = {name for name in names if tensor_role(name) is TensorRole.PROJECTION}
    expected = {n for n in names if re.search(r"\.(q|k|v|o|gate|up|down)_proj\.weight$", n)}
    assert projections == expected and len(expected) == 7
    assert tensor_role("model.layers.3.input_layernorm.weight") is TensorRole.OTHER
    assert tensor_role("model.layers.3.self_attn.q_proj.bias") is TensorRole.OTHER  # Qwen2 biases: vectors


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_input_checks_and_subspace_methods_agree_on_every_matrix(architecture):
    matrix = torch.zeros(4, 4)
    for name, _ in _weights(json.loads(ARCHITECTURES[architecture].read_text())):
        # a tensor the input checks may truncate as vocabulary is never SVD-decomposed, and vice versa
        assert tensor_checks.is_vocab_tensor(name) != tensor_roles.is_decomposed_matrix(name, matrix.ndim), name
