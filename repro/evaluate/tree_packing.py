"""Tree-packed scoring of short requests: each distinct token prefix of a task's requests computed once.

A loglikelihood request (context, continuation) needs the model's log-probabilities at the positions of
its input tokens (context + continuation)[:-1], from the last context token on. Short requests share more
than their context: an item's choices share the context and often their first tokens (" 6" of " 62" and
" 63"), and a task's items share their opening words ("add "). Here the requests are laid out as prefix
trees on token ids (never strings): every distinct prefix is one position of a packed row, at its depth as
position id, attending to its ancestors only (a 4D attention mask). A row holds the trees of many
requests, up to `width` positions; a forward runs several rows. Each position sees exactly the tokens
before it in its own sequence, at the same positions, so the scores equal the stock path's within
floating-point noise (tests/test_evaluate_tree_packing.py).

Only decoder models whose attention takes a 4D boolean mask and explicit position ids as given
(`TREE_MODEL_TYPES`, sdpa or eager attention, no sliding window shorter than a row) use it; longer
requests (few-shot preambles) keep the key/value-cache path of repro/evaluate/shared_context.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Model types whose HF implementation passes a 4D attention mask and position ids through unchanged
# (transformers' masking_utils returns a 4D mask as is; RoPE reads position_ids).
TREE_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
TREE_ATTENTION = ("sdpa", "eager")
TREE_WIDTH = 256  # positions per packed row; requests with a longer input take the other paths

Request = tuple[tuple[str, str] | None, list[int], list[int]]


@dataclass
class PackedRow:
    """One row: tokens in insertion order (a parent before its children), their depths and parents, and
    for each request scored here, its index and the row position predicting each continuation token."""

    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    scored: list[tuple[int, list[int]]] = field(default_factory=list)
    _children: list[dict[int, int]] = field(default_factory=lambda: [{}])  # node -> {token: node}; [0] = root

    def new_positions(self, path: list[int]) -> int:
        """How many positions `path` adds to this row."""
        node = 0
        for depth, token in enumerate(path):
            child = self._children[node].get(token)
            if child is None:
                return len(path) - depth
            node = child
        return 0

    def add(self, index: int, path: list[int], first_scored: int) -> None:
        node, nodes = 0, []
        for depth, token in enumerate(path):
            child = self._children[node].get(token)
            if child is None:
                self.tokens.append(token)
                self.positions.append(depth)
                self.parents.append(node - 1)  # row position of the parent (-1: none)
                self._children.append({})
                child = len(self._children) - 1
                self._children[node][token] = child
            node = child
            nodes.append(node - 1)
        self.scored.append((index, nodes[first_scored:]))


def request_path(request: Request) -> tuple[list[int], int]:
    """(input tokens, index of the first position whose logits are scored) of one request."""
    _, context, continuation = request
    path = (context + continuation)[:-1]
    return path, len(context) - 1


def tree_eligible(request: Request, width: int) -> bool:
    _, context, continuation = request
    return bool(context) and bool(continuation) and len(context) + len(continuation) - 1 <= width


def pack_requests(requests: list[Request], indices: list[int], width: int) -> list[PackedRow]:
    """Rows of at most `width` positions holding the requests `indices`, in token order (so requests
    with shared prefixes land in the same row)."""
    order = sorted(indices, key=lambda i: requests[i][1] + requests[i][2])
    rows: list[PackedRow] = []
    for index in order:
        path, first_scored = request_path(requests[index])
        if not rows or len(rows[-1].tokens) + rows[-1].new_positions(path) > width:
            rows.append(PackedRow())
        rows[-1].add(index, path, first_scored)
    return rows


def packed_positions(requests: list[Request], width: int = TREE_WIDTH) -> int:
    """Token positions the tree-packed scorer runs for the eligible requests (padding excluded)."""
    indices = [i for i, request in enumerate(requests) if tree_eligible(request, width)]
    return sum(len(row.tokens) for row in pack_requests(requests, indices, width))


def row_tensors(rows: list[PackedRow], pad: int):
    """(input ids, position ids, 4D boolean attention mask: True = attend) of rows padded to the longest;
    a padding position attends to itself only."""
    # torch: deferred so that importing this module does not load it
    import torch

    width = max(len(row.tokens) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), 1, width, width), dtype=torch.bool)
    for b, row in enumerate(rows):
        n = len(row.tokens)
        ids[b, :n] = torch.tensor(row.tokens)
        positions[b, :n] = torch.tensor(row.positions)
        seen = mask[b, 0]
        for j, parent in enumerate(row.parents):  # a parent comes before its children: its row is complete
            if parent >= 0:
                seen[j] = seen[parent]
            seen[j, j] = True
        seen[torch.arange(n, width), torch.arange(n, width)] = True
    return ids, positions, mask


@dataclass(frozen=True)
class PackedBatch:
    """One forward's rows as tensors, and where each scored token is: row `rows[k]`, position
    `nodes[k]`, token `tokens[k]`, of request `requests[owners[k]]`."""

    ids: object
    positions: object
    mask: object
    rows: object
    nodes: object
    tokens: object
    owners: object
    requests: list[int]


def packed_batches(requests: list[Request], indices: list[int], width: int, rows_per_forward: int,
                   pad: int) -> list[PackedBatch]:
    """The forwards that score the requests `indices` (built once per request set: every model of one
    tokenizer reuses them)."""
    # torch: deferred so that importing this module does not load it
    import torch

    rows = pack_requests(requests, indices, width)
    batches = []
    for start in range(0, len(rows), rows_per_forward):
        chunk = rows[start : start + rows_per_forward]
        ids, positions, mask = row_tensors(chunk, pad)
        where: list[tuple[int, int, int, int]] = []
        owned: list[int] = []
        for b, row in enumerate(chunk):
            for index, nodes in row.scored:
                continuation = requests[index][2]
                where += [(b, node, token, len(owned)) for node, token in zip(nodes, continuation, strict=True)]
                owned.append(index)
        rows_t, nodes_t, tokens_t, owners_t = (torch.tensor(column, dtype=torch.long) for column in zip(*where, strict=True))
        batches.append(PackedBatch(ids, positions, mask, rows_t, nodes_t, tokens_t, owners_t, owned))
    return batches


def batch_scores(batch: PackedBatch, logprobs) -> list[tuple[float, bool]]:
    """(log-likelihood, greedy) of each request of `batch` from the forward's log-probabilities."""
    # torch: deferred so that importing this module does not load it
    import torch

    device = logprobs.device
    rows, nodes, tokens, owners = (t.to(device) for t in (batch.rows, batch.nodes, batch.tokens, batch.owners))
    picked = logprobs[rows, nodes]  # [scored tokens, vocab]
    values = picked.gather(1, tokens[:, None])[:, 0]
    misses = (picked.argmax(dim=-1) != tokens).to(torch.long)
    n = len(batch.requests)
    sums = torch.zeros(n, dtype=values.dtype, device=device).index_add_(0, owners, values)
    missed = torch.zeros(n, dtype=torch.long, device=device).index_add_(0, owners, misses)
    return [(float(v), bool(m == 0)) for v, m in zip(sums.tolist(), missed.tolist(), strict=True)]


def tree_ready(model, width: int) -> bool:
    """Whether `model` takes a packed tree row as it is (see TREE_MODEL_TYPES)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in TREE_MODEL_TYPES:
        return False
    if getattr(config, "_attn_implementation", None) not in TREE_ATTENTION:
        return False
    window = getattr(config, "sliding_window", None)
    return not (window and getattr(config, "use_sliding_window", True) is not False and window < width)
