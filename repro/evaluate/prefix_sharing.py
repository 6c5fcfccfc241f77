"""Prefix sharing across items: which token prefix is computed once, and how many tokens each scorer runs.

Few-shot tasks with a fixed preamble (lm-eval's `first_n` sampler: `leaderboard_mmlu_pro`,
`leaderboard_bbh`) put the same worked examples before every item. The shared-context scorer groups
an item's choices by their context (`shared_context.group_requests`); this module goes one level up:
the groups' prefixes (token ids, as lm-eval's `_encode_pair` built them) are ordered
lexicographically — the depth-first order of a prefix tree on token ids — and the tree is cut where
computing one shared prefix saves the most token positions: a subtree of n groups whose prefixes
share L tokens saves (n - 1) * L positions when shared as a whole, or the sum of its children's
savings when they are shared separately (a longer prefix each). A shared prefix runs once per
(task selection, model); every group of its cluster keeps at least one own prefix token, so the
group's prefix run returns the logits for its first scored position.

Everything here works on token ids only (never strings: the boundary between preamble and item may
merge tokens, e.g. "\\n\\n" + "Question"), and it runs without a model: `count_forward_tokens` gives
the token positions (padding excluded) that stock lm-eval, the item-level scorer and prefix sharing
send through the model for the same requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from repro.evaluate.tree_packing import packed_positions, tree_eligible

# a shared prefix shorter than this is not worth an extra forward call (and a cache copy per batch)
MIN_SHARED_TOKENS = 16

Request = tuple[tuple[str, str] | None, list[int], list[int]]


@dataclass
class Group:
    """Requests that share their context tokens: one prefix run, one row per distinct continuation input."""

    prefix: list[int]
    rows: list[list[int]] = field(default_factory=list)  # input tokens after the prefix (each >= 1 token)
    members: list[tuple[int, int, int]] = field(default_factory=list)  # (request index, row, cont length)

    @property
    def length(self) -> int:
        return len(self.prefix) + max(len(row) for row in self.rows)


@dataclass
class Cluster:
    """Groups scored against one shared token prefix (`shared`, possibly empty: no cross-item sharing)."""

    shared: list[int]
    groups: list[Group]


def common_prefix_length(sequences: list[list[int]]) -> int:
    first, n = sequences[0], min(len(s) for s in sequences)
    for i in range(n):
        token = first[i]
        if any(s[i] != token for s in sequences):
            return i
    return n


def _pair_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def group_requests(requests: list[Request], max_length: int, keep_single: bool = False) -> tuple[list[Group], list[int]]:
    """Split requests into shared-context groups and the indices left to the stock path.

    The model input of a request is (context + continuation)[:-1]; the prefix of a group is the
    longest common token prefix of its inputs, capped so that every input keeps at least one token
    after it and no continuation token lies inside it (its scores start at the last context token,
    whose logits the prefix run returns). A context with a single request is a group only with
    `keep_single` (it can then share a preamble with other items), else it goes to the stock path.
    """
    by_context: dict[tuple[int, ...], list[int]] = {}
    stock: list[int] = []
    for index, (_, context, continuation) in enumerate(requests):
        if len(context) + len(continuation) > max_length + 1 or not context or not continuation:
            stock.append(index)  # truncated or degenerate: exactly lm-eval's handling
        else:
            by_context.setdefault(tuple(context), []).append(index)
    groups = []
    for context, indices in by_context.items():
        inputs = [(list(context) + requests[i][2])[:-1] for i in indices]
        cut = min(common_prefix_length(inputs), len(context), min(len(inp) for inp in inputs) - 1)
        if (len(indices) < 2 and not keep_single) or cut < 1:
            stock.extend(indices)
            continue
        group = Group(prefix=inputs[0][:cut])
        row_of: dict[tuple[int, ...], int] = {}
        for index, inp in zip(indices, inputs, strict=True):
            key = tuple(inp)
            if key not in row_of:
                row_of[key] = len(group.rows)
                group.rows.append(inp[cut:])
            group.members.append((index, row_of[key], len(requests[index][2])))
        groups.append(group)
    return groups, sorted(stock)


def cluster_groups(groups: list[Group], min_shared: int = MIN_SHARED_TOKENS) -> list[Cluster]:
    """Cut the prefix tree of the groups' prefixes where one shared prefix per cluster saves the most.

    Returns clusters with a shared prefix (>= `min_shared` tokens, >= 2 groups), then one cluster with
    an empty shared prefix holding every other group (input order kept).
    """
    if not groups:
        return []
    order = sorted(range(len(groups)), key=lambda i: groups[i].prefix)
    prefixes = [groups[i].prefix for i in order]
    # lcp[k]: tokens shared by neighbours k and k+1, leaving each at least one own prefix token
    lcp = [
        min(_pair_prefix_length(a, b), len(a) - 1, len(b) - 1) for a, b in zip(prefixes, prefixes[1:], strict=False)
    ]
    chosen: list[tuple[int, int, int]] = []  # (first, last, shared length) in sorted order
    # post-order over the tree of minimum splits, without recursion: ("visit", lo, hi) / ("done", ...)
    value: dict[tuple[int, int], tuple[int, list[tuple[int, int, int]]]] = {}
    stack: list[tuple[str, int, int]] = [("visit", 0, len(order) - 1)]
    while stack:
        action, lo, hi = stack.pop()
        if lo == hi:
            value[(lo, hi)] = (0, [])
            continue
        shared = min(lcp[lo:hi])
        cuts = [k for k in range(lo, hi) if lcp[k] == shared]
        children = list(zip([lo] + [k + 1 for k in cuts], cuts + [hi], strict=True))
        if action == "visit":
            stack.append(("done", lo, hi))
            stack.extend(("visit", a, b) for a, b in children)
            continue
        split_value = sum(value[c][0] for c in children)
        split_plan = [part for c in children for part in value.pop(c)[1]]
        whole = (hi - lo) * shared if shared >= min_shared else 0
        value[(lo, hi)] = (whole, [(lo, hi, shared)]) if whole > 0 and whole >= split_value else (
            split_value, split_plan)
    chosen = value[(0, len(order) - 1)][1]
    clusters, clustered = [], set()
    for lo, hi, shared in chosen:
        members = order[lo : hi + 1]
        clustered.update(members)
        clusters.append(Cluster(shared=list(prefixes[lo][:shared]), groups=[groups[i] for i in members]))
    rest = [g for i, g in enumerate(groups) if i not in clustered]
    if rest:
        clusters.append(Cluster(shared=[], groups=rest))
    return clusters


def plan_requests(requests: list[Request], max_length: int, share_across_items: bool = True) -> tuple[list[Cluster], list[int]]:
    """The scorer's plan: clusters of groups and the request indices left to lm-eval's stock path.

    Without `share_across_items` (or where nothing is shared), a context with a single request goes
    to the stock path, as in the item-level scorer."""
    groups, stock = group_requests(requests, max_length, keep_single=share_across_items)
    clusters = cluster_groups(groups) if share_across_items else ([Cluster([], groups)] if groups else [])
    if clusters and not clusters[-1].shared:
        rest = clusters[-1]
        single = [g for g in rest.groups if len(g.members) < 2]
        stock = sorted(stock + [index for g in single for index, _, _ in g.members])
        rest.groups = [g for g in rest.groups if len(g.members) >= 2]
        if not rest.groups:
            clusters.pop()
    return clusters, stock


def plan_batches(groups: list[Group], max_rows: int) -> list[list[Group]]:
    """Longest groups first; a batch takes groups while its continuation rows fit `max_rows`.
    A group with more rows than `max_rows` is a batch of its own (its rows are then chunked)."""
    ordered = sorted(groups, key=lambda g: (-g.length, g.prefix))
    batches: list[list[Group]] = []
    current: list[Group] = []
    rows = 0
    for group in ordered:
        if current and rows + len(group.rows) > max_rows:
            batches.append(current)
            current, rows = [], 0
        current.append(group)
        rows += len(group.rows)
    if current:
        batches.append(current)
    return batches


def stock_forward_tokens(requests: list[Request], max_length: int) -> int:
    """Token positions stock lm-eval's HF backend computes (padding excluded): every distinct
    (context + continuation[:-1]) once (its logits cache), left-truncated to `max_length`."""
    seen: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
    total = 0
    for _, context, continuation in requests:
        key = (tuple(context), tuple(continuation[:-1]))
        if key in seen:
            continue
        seen.add(key)
        total += min(len(context) + len(continuation) - 1, max_length)
    return total


def _kv_positions(cluster: Cluster) -> int:
    return len(cluster.shared) + sum(len(g.prefix) - len(cluster.shared) + sum(len(row) for row in g.rows)
                                     for g in cluster.groups)


def tree_packed_indices(requests: list[Request], max_length: int, tree_width: int | None,
                        share_across_items: bool = True) -> list[int]:
    """The requests the kit's scorer packs as prefix trees (repro.evaluate.tree_packing): of those that fit
    a row of `tree_width` positions, the ones nothing is shared with (the stock path's) and every cluster
    that packed trees run in fewer positions than its key/value-cache plan (a shared few-shot preamble is
    copied into every row of a packed tree, but runs once over the cache)."""
    if not tree_width:
        return []
    eligible = [i for i, request in enumerate(requests) if tree_eligible(request, tree_width)]
    short = [requests[i] for i in eligible]
    clusters, stock = plan_requests(short, max_length, share_across_items=share_across_items)
    chosen = [eligible[i] for i in stock]
    for cluster in clusters:
        members = [index for group in cluster.groups for index, _, _ in group.members]
        if packed_positions([short[i] for i in members], tree_width) < _kv_positions(cluster):
            chosen += [eligible[i] for i in members]
    return sorted(chosen)


def count_forward_tokens(requests: list[Request], max_length: int, tree_width: int | None = None) -> dict[str, int]:
    """Forward token positions (padding excluded) of the same requests under the three scorers:
    `stock` (lm-eval `hf`), `item` (shared context per item), `prefix` (the kit's scorer: prefix sharing
    across items; with `tree_width`, for a model family that takes packed rows, the requests
    `tree_packed_indices` picks packed as prefix trees, repro.evaluate.tree_packing)."""
    counts = {"stock": stock_forward_tokens(requests, max_length)}
    for name, share in (("item", False), ("prefix", True)):
        packed = set(tree_packed_indices(requests, max_length, tree_width) if share else [])
        rest = [r for i, r in enumerate(requests) if i not in packed]
        total = packed_positions([requests[i] for i in sorted(packed)], tree_width) if packed else 0
        clusters, stock = plan_requests(rest, max_length, share_across_items=share)
        total += stock_forward_tokens([rest[i] for i in stock], max_length)
        total += sum(_kv_positions(cluster) for cluster in clusters)
        counts[name] = total
    return counts
