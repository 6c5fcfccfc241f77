"""Shared-context scoring: an lm-eval HF model that computes each multiple-choice context once.

lm-eval's HF backend scores an item with k choices as k sequences `context + choice`, so the shared
context is computed k times (its `logits_cache` only helps when every choice is one token). This
model groups the loglikelihood requests that share their context tokens, runs the longest common
token prefix of the group once (`use_cache=True`), repeats its key/value cache over the group's
distinct continuations and scores them all in one batch. The prefix is taken at the token level,
from the exact token sequences lm-eval built (`_encode_pair` encodes context + continuation jointly
and splits), never from the strings.

Batches hold several items: their prefixes are left-padded (position ids count real tokens only),
their continuations right-padded; the attention mask covers prefix + continuation. A batch holds at
most `batch_size` continuation rows — lm-eval's meaning of the batch size, and with `auto` the size
lm-eval's own probe finds for its (longer) full sequences — so memory stays below the stock path's.
Across items: the groups' prefixes are cut along a prefix tree on token ids
(repro/evaluate/prefix_sharing.py); where several items start with the same tokens (a `first_n`
few-shot preamble), that shared prefix runs once per call and model, and every group's own tokens
after it run over a copy of its key/value cache. Requests that share nothing with another one,
truncated (over-long) requests, requests longer than a sliding attention window and seq2seq models
go through the stock path unchanged. Short requests (input up to 256 tokens) of the decoder families in
repro/evaluate/tree_packing.py are packed as prefix trees instead: every distinct token prefix of a
call's short requests runs once, several items per row.

`repro lm-eval ...` is the stock CLI with it registered as `--model hf-shared`
(repro.evaluate.lm_eval_registration); importing this module registers nothing.
"""

from __future__ import annotations

import copy
import inspect

import torch
import torch.nn.functional as F
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

from repro.evaluate.prefix_sharing import Group, Request, plan_batches, plan_requests, tree_packed_indices
from repro.evaluate.tree_packing import TREE_WIDTH, batch_scores, packed_batches, tree_ready


class SharedContextHFLM(HFLM):
    """lm-eval's HFLM with shared-context loglikelihood scoring (same arguments as `hf`).

    `token_cache` (optional dict) maps (context, continuation) strings to lm-eval's token ids; the
    caller shares it between models with the same tokenizer (see repro.evaluate.prepared).
    `share_prefix` (default True) also shares the longest common token prefix of several items (a
    few-shot preamble) across them (repro.evaluate.prefix_sharing); False scores each item on its own.
    `pack_trees` (default True; with `share_prefix`) scores short requests packed as prefix trees
    (repro.evaluate.tree_packing) where the model family supports it and that runs fewer positions.
    `forward_tokens` counts the token positions sent through the model.
    """

    def __init__(self, *args, token_cache: dict | None = None, share_prefix: bool | str = True,
                 pack_trees: bool | str = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.token_cache = token_cache
        self.packing_cache: dict = {}  # request set -> scorer plan; the caller may share one between models
        self.share_prefix = str(share_prefix).lower() not in ("false", "0", "no")
        self.pack_trees = str(pack_trees).lower() not in ("false", "0", "no")
        self.forward_tokens = 0
        parameters = inspect.signature(self.model.forward).parameters
        self._keeps_logits = "logits_to_keep" in parameters
        # transformers 5 renamed `past_key_values` to `cache` (the old name still works, with a warning)
        self._cache_kwarg = "cache" if "cache" in parameters else "past_key_values"

    # -- tokenization, shared between models of one tokenizer ---------------------------------------
    def loglikelihood(self, requests, disable_tqdm: bool = False):
        if self.token_cache is None:
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        cache = self.token_cache
        missing = [req for req in requests if req.args not in cache]
        if missing:
            # lm-eval's own tokenization (empty contexts, trailing spaces, joint encoding), done once.
            self._loglikelihood_tokens = lambda reqs, **_: [
                cache.setdefault(key, (ctx, cont)) for key, ctx, cont in reqs
            ]
            try:
                super().loglikelihood(missing, disable_tqdm=True)
            finally:
                del self._loglikelihood_tokens  # back to the class's method
        encoded = [(req.args, *cache[req.args]) for req in requests]
        return self._loglikelihood_tokens(encoded, disable_tqdm=disable_tqdm)

    # -- scoring -------------------------------------------------------------------------------------
    def _model_call(self, inps, attn_mask=None, labels=None):
        self.forward_tokens += int(inps.numel())
        return super()._model_call(inps, attn_mask=attn_mask, labels=labels)

    def _loglikelihood_tokens(self, requests: list[Request], disable_tqdm: bool = False, override_bs=None):
        if self.backend != "causal" or override_bs is not None:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        width = min(TREE_WIDTH, self.max_length)
        if not (self.pack_trees and self.share_prefix and tree_ready(self.model, width)):
            return self._context_loglikelihood_tokens(requests, disable_tqdm)  # packed trees share across items
        # every model of one tokenizer sees the same requests: the plan and the packed rows are keyed by them
        signature = tuple((tuple(context), tuple(continuation)) for _, context, continuation in requests)
        packed = self._tree_packed(requests, width, signature)
        if not packed:
            return self._context_loglikelihood_tokens(requests, disable_tqdm)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        for index, answer in self._tree_scores(requests, packed, width, signature):
            results[index] = answer
            if requests[index][0] is not None:
                self.cache_hook.add_partial("loglikelihood", requests[index][0], answer)
        taken = set(packed)
        rest = [i for i in range(len(requests)) if i not in taken]
        if rest:
            for index, answer in zip(rest, self._context_loglikelihood_tokens([requests[i] for i in rest], disable_tqdm),
                                     strict=True):
                results[index] = answer
        return results

    def _tree_packed(self, requests: list[Request], width: int, signature: tuple) -> list[int]:
        """The requests to pack as prefix trees (prefix_sharing.tree_packed_indices), decided once per
        request set (`signature`: their token ids)."""
        key = ("tree-packed-indices", width, self.max_length, self.share_prefix, signature)
        cache = self.packing_cache
        if key not in cache:
            cache[key] = tree_packed_indices(requests, self.max_length, width, self.share_prefix)
        return cache[key]

    def _tree_scores(self, requests: list[Request], indices: list[int], width: int, signature: tuple):
        """(request index, (log-likelihood, greedy)) of the requests `indices` (which the request set
        `signature` determines), packed as prefix trees."""
        longest = max(len(requests[i][1]) + len(requests[i][2]) - 1 for i in indices)
        if self.batch_size != "auto":  # as many positions per forward as lm-eval's batch of the longest request
            per_forward = max(1, int(self.batch_size) * longest // width)
        else:
            per_forward = max(1, int(self._detect_batch_size([(None, [0] * (width - 1), [0, 0])])))
            self.batch_sizes[len(self.batch_sizes)] = per_forward
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        key = ("tree-packed", width, self.max_length, self.share_prefix, per_forward, pad, signature)
        cache = self.packing_cache
        if key not in cache:  # packed once per request set and tokenizer
            cache[key] = packed_batches(requests, indices, width, per_forward, pad)
        for batch in cache[key]:
            ids, positions, mask = (t.to(self.device) for t in (batch.ids, batch.positions, batch.mask))
            self.forward_tokens += int(ids.numel())
            with (
                torch.inference_mode(),
                torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                               enabled=self.mixed_precision_dtype is not None),
            ):
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).logits
                logprobs = F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype)
            del logits
            # `indices` positions -> request indices: batches hold positions into `requests`
            yield from zip(batch.requests, batch_scores(batch, logprobs), strict=True)

    def _context_loglikelihood_tokens(self, requests: list[Request], disable_tqdm: bool = False):
        window = _sliding_window(self.config)
        # a request longer than a sliding attention window is left to the stock path (the model's own
        # masking); so is one that lm-eval truncates (longer than max_length + 1)
        clusters, stock_indices = plan_requests(
            requests, min(self.max_length, window or self.max_length), share_across_items=self.share_prefix
        )
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        if stock_indices:
            stock = super()._loglikelihood_tokens(
                [requests[i] for i in stock_indices], disable_tqdm=disable_tqdm
            )
            for i, answer in zip(stock_indices, stock, strict=True):
                results[i] = answer
        if clusters:
            max_rows = self._rows_per_batch([g for c in clusters for g in c.groups])
            progress = tqdm(
                total=sum(len(g.members) for c in clusters for g in c.groups),
                disable=disable_tqdm or self.rank != 0,
                desc="Running loglikelihood requests (shared context)",
            )
            for cluster in clusters:
                shared_cache = self._shared_prefix_cache(cluster.shared)
                for batch in plan_batches(cluster.groups, max_rows):
                    for (index, answer) in self._score_batch(batch, requests, max_rows, cluster.shared, shared_cache):
                        results[index] = answer
                        request_str = requests[index][0]
                        if request_str is not None:
                            self.cache_hook.add_partial("loglikelihood", request_str, answer)
                        progress.update(1)
                del shared_cache
            progress.close()
        assert all(r is not None for r in results)
        return results

    def _shared_prefix_cache(self, shared: list[int]):
        """The key/value cache of a cluster's shared prefix (one row), or None without one."""
        if not shared:
            return None
        ids = torch.tensor([shared], dtype=torch.long, device=self.device)
        out = self._forward(ids, torch.ones_like(ids), torch.arange(len(shared), device=self.device)[None, :],
                            last_only=True)
        return out.cache if hasattr(out, "cache") else out.past_key_values

    def _rows_per_batch(self, groups: list[Group]) -> int:
        """lm-eval's batch size; with `auto`, what lm-eval's probe finds for the longest full sequence
        (a continuation row over a cached prefix needs less memory than that full sequence)."""
        if self.batch_size != "auto":
            return max(1, int(self.batch_size))
        longest = max(groups, key=lambda g: g.length)
        row = max(longest.rows, key=len)
        probe = [(None, longest.prefix, row + [0])]  # lm-eval probes with (context + continuation)[:-1]
        size = max(1, int(self._detect_batch_size(probe)))
        self.batch_sizes[len(self.batch_sizes)] = size  # where lm-eval keeps detected sizes (recorded per job)
        return size

    def _forward(self, input_ids, attention_mask, position_ids, past_key_values=None, last_only=False):
        self.forward_tokens += int(input_ids.numel())
        kwargs = {"logits_to_keep": 1} if last_only and self._keeps_logits else {}
        if past_key_values is not None:
            kwargs[self._cache_kwarg] = past_key_values
        with (
            torch.inference_mode(),
            torch.autocast(
                device_type=self.device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            ),
        ):
            return self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=True,
                **kwargs,
            )

    @torch.inference_mode()
    def _score_batch(self, batch: list[Group], requests: list[Request], max_rows: int,
                     shared: list[int] | None = None, shared_cache=None):
        """Score a batch of groups; with a shared prefix (its cache computed once for the cluster), each
        group's own prefix tokens after it run over a copy of that cache, left-padded between the
        shared prefix and the group's tokens (masked; positions count real tokens only)."""
        device = self.device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        skip = len(shared) if shared else 0
        own = [group.prefix[skip:] for group in batch]  # >= 1 token each (prefix_sharing.cluster_groups)
        width = max(len(p) for p in own)
        prefix_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        prefix_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for b, tokens in enumerate(own):  # left padding: every prefix ends at the last column
            prefix_ids[b, width - len(tokens) :] = torch.tensor(tokens)
            prefix_mask[b, width - len(tokens) :] = 1
        prefix_ids, prefix_mask = prefix_ids.to(device), prefix_mask.to(device)
        positions = skip + (prefix_mask.cumsum(-1) - 1).clamp(min=0)
        if skip:
            base = _select_rows(shared_cache, torch.zeros(len(batch), dtype=torch.long, device=device), last=False)
            prefix_mask = torch.cat([torch.ones((len(batch), skip), dtype=torch.long, device=device), prefix_mask], -1)
            out = self._forward(prefix_ids, prefix_mask, positions, past_key_values=base, last_only=True)
            del base
        else:
            out = self._forward(prefix_ids, prefix_mask, positions, last_only=True)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        last_logits = out.logits[:, -1, :]  # [groups, vocab]: predicts the first token after each prefix
        del out

        rows = [(b, row) for b, group in enumerate(batch) for row in group.rows]
        row_logits: list[torch.Tensor] = []
        for start in range(0, len(rows), max_rows):
            chunk = rows[start : start + max_rows]
            owner = torch.tensor([b for b, _ in chunk], dtype=torch.long, device=device)
            length = max(len(row) for _, row in chunk)
            ids = torch.full((len(chunk), length), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), length), dtype=torch.long)
            for r, (_, row) in enumerate(chunk):  # right padding after the continuation
                ids[r, : len(row)] = torch.tensor(row)
                mask[r, : len(row)] = 1
            ids, mask = ids.to(device), mask.to(device)
            start_pos = prefix_mask.sum(-1)[owner]
            row_positions = start_pos[:, None] + torch.arange(length, device=device)[None, :]
            row_cache = _select_rows(cache, owner, last=start + len(chunk) >= len(rows))
            logits = self._forward(ids, torch.cat([prefix_mask[owner], mask], dim=-1), row_positions,
                                   past_key_values=row_cache).logits
            del row_cache
            # logits for positions [prefix-1, prefix, ..., prefix+length-1]
            full = torch.cat([last_logits[owner][:, None, :], logits], dim=1)
            full = F.log_softmax(full, dim=-1, dtype=self.softmax_dtype)
            row_logits.extend(full[r, : len(row) + 1] for r, (_, row) in enumerate(chunk))
        del cache

        offsets, total = [], 0
        for group in batch:
            offsets.append(total)
            total += len(group.rows)
        for b, group in enumerate(batch):
            for index, row, cont_len in group.members:
                logprobs = row_logits[offsets[b] + row]  # [len(row) + 1, vocab], last = after the full input
                n_scored_from = logprobs.shape[0] - cont_len
                scored = logprobs[n_scored_from:]
                cont = torch.tensor(requests[index][2], dtype=torch.long, device=scored.device)
                greedy = bool((scored.argmax(dim=-1) == cont).all())
                value = float(torch.gather(scored, 1, cont[:, None]).sum())
                yield index, (value, greedy)


def _sliding_window(config) -> int | None:
    """The attention window of a model with sliding-window layers in use, else None."""
    window = getattr(config, "sliding_window", None)
    if not window or getattr(config, "use_sliding_window", True) is False:
        return None
    return int(window)


def _select_rows(cache, owner: torch.Tensor, last: bool):
    """The prefix cache repeated onto continuation rows (a copy unless it is the last use)."""
    rows = cache if last else copy.copy(cache)
    if not last:
        rows.layers = [copy.copy(layer) for layer in cache.layers]
    rows.batch_select_indices(owner)
    return rows
