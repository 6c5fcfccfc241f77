"""Tree-packed scoring (repro/evaluate/tree_packing.py): short requests laid out as prefix trees on token
ids, every distinct prefix computed once. The layout (each scored position sees exactly its own sequence,
at its own positions) on random requests, and the scores against lm-eval's stock HF path on tiny Llama and
Qwen3 models: float32 within 1e-4, the same greedy flags; predictions then follow."""

from __future__ import annotations

import random

import pytest
import torch

from repro.evaluate import tree_packing
from repro.evaluate.scorer_check import FLOAT32_TOLERANCE


def _random_requests(rng: random.Random, n_items: int, vocab: int = 40) -> list:
    """Items with shared openings, several choices sharing leading tokens, some duplicates."""
    openings = [[rng.randrange(3, vocab) for _ in range(rng.randint(0, 6))] for _ in range(3)]
    requests = []
    for _ in range(n_items):
        context = [2] + rng.choice(openings) + [rng.randrange(3, vocab) for _ in range(rng.randint(1, 12))]
        stem = [rng.randrange(3, vocab) for _ in range(rng.randint(0, 2))]
        for _ in range(rng.randint(1, 5)):
            continuation = stem + [rng.randrange(3, vocab) for _ in range(rng.randint(1, 6))]
            requests.append((None, context, continuation))
        if rng.random() < 0.2:
            requests.append(requests[-1])
    return requests


def _ancestors(row: tree_packing.PackedRow, node: int) -> list[int]:
    path = []
    while node >= 0:
        path.append(node)
        node = row.parents[node]
    return path[::-1]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_scored_position_sees_its_own_sequence_at_its_own_positions(seed):
    rng = random.Random(seed)
    requests = _random_requests(rng, 60)
    width = rng.choice([24, 40, 64])
    indices = [i for i, r in enumerate(requests) if tree_packing.tree_eligible(r, width)]
    rows = tree_packing.pack_requests(requests, indices, width)
    scored = sorted(index for row in rows for index, _ in row.scored)
    assert scored == sorted(indices)  # every eligible request exactly once
    for row in rows:
        assert len(row.tokens) <= width
        ids, positions, mask = tree_packing.row_tensors([row], pad=0)
        for index, nodes in row.scored:
            _, context, continuation = requests[index]
            full = context + continuation
            assert len(nodes) == len(continuation)
            for k, node in enumerate(nodes):
                chain = _ancestors(row, node)
                # the tokens this position attends to are its sequence's tokens up to the one it reads
                assert [row.tokens[j] for j in chain] == full[: len(context) + k]
                assert [row.positions[j] for j in chain] == list(range(len(context) + k))
                assert sorted(torch.nonzero(mask[0, 0, node]).flatten().tolist()) == sorted(chain)
    # shared prefixes are computed once: fewer positions than the item-level scorer's inputs
    item_level = sum(len(requests[i][1]) + len(requests[i][2]) - 1 for i in indices)
    assert tree_packing.packed_positions(requests, width) < item_level


def test_only_short_requests_of_known_families_are_packed():
    assert tree_packing.tree_eligible((None, [1, 2, 3], [4, 5]), 4)
    assert not tree_packing.tree_eligible((None, [1, 2, 3], [4, 5, 6]), 4)
    assert not tree_packing.tree_eligible((None, [], [4]), 4)  # no context token to read the first logits from

    class Config:
        model_type, _attn_implementation, sliding_window = "llama", "sdpa", None

    class Model:
        config = Config()

    assert tree_packing.tree_ready(Model(), 256)
    Config.model_type = "gpt2"
    assert not tree_packing.tree_ready(Model(), 256)
    Config.model_type, Config._attn_implementation = "qwen3", "flash_attention_2"
    assert not tree_packing.tree_ready(Model(), 256)
    Config._attn_implementation, Config.sliding_window = "sdpa", 128
    assert not tree_packing.tree_ready(Model(), 256)


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_packed_scores_match_the_stock_hf_path(tiny_world, batch_size):
    from lm_eval.models.huggingface import HFLM

    from repro.evaluate.shared_context import SharedContextHFLM

    rng = random.Random(batch_size)
    stock = HFLM(pretrained=str(tiny_world.base), dtype="float32", batch_size=batch_size, device="cpu")
    vocab = stock.model.config.vocab_size
    requests = [((f"c{i}", f"k{i}"), ctx, cont) for i, (_, ctx, cont) in
                enumerate(_random_requests(rng, 40, vocab=vocab))]
    requests.append((("long", "x"), [2] + [5] * 300, [6, 7]))  # longer than a row: the key/value-cache path
    expected = stock._loglikelihood_tokens(requests, disable_tqdm=True)
    ours = SharedContextHFLM(pretrained=str(tiny_world.base), dtype="float32", batch_size=batch_size, device="cpu",
                             token_cache={})
    assert tree_packing.tree_ready(ours.model, tree_packing.TREE_WIDTH)
    got = ours._loglikelihood_tokens(requests, disable_tqdm=True)
    assert len(got) == len(expected)
    for (value, greedy), (stock_value, stock_greedy) in zip(got, expected, strict=True):
        assert abs(value - stock_value) <= FLOAT32_TOLERANCE
        assert greedy == stock_greedy
    positions = tree_packing.packed_positions(requests)
    assert positions < sum(len(c) + len(k) - 1 for _, c, k in requests[:-1])
    again = ours._loglikelihood_tokens(requests, disable_tqdm=True)  # packed once, reused
    assert again == got
