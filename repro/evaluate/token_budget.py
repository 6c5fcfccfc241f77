"""Token budget of a suite: items, requests and forward tokens per task, from the tokenized requests.

No model runs: lm-eval builds every task's requests (documents, few-shot preambles, prompts) exactly as
for an evaluation, a tokenizer-only stand-in for lm-eval's HF model tokenizes them with lm-eval's own
`_encode_pair` (trailing spaces, joint encoding, BOS handling, empty contexts), and
repro.evaluate.prefix_sharing counts the token positions (padding excluded) that each scorer sends
through the model: `stock` (lm-eval `hf`: every distinct context + continuation[:-1] once, its logits
cache), `item` (the shared-context scorer, each item's context once) and `prefix` (the kit's scorer:
prefix sharing across items, and for Llama/Qwen/Mistral models short requests packed as prefix trees). The model directory gives the tokenizer and the context length (config.json);
hub suites need their datasets in the local cache (HF_DATASETS_OFFLINE=1 works then).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from lm_eval.api.model import LM
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import resolve_max_length

from repro.evaluate import EvaluationSession
from repro.evaluate.harness import prepare_tasks, run_lm_eval
from repro.evaluate.prefix_sharing import count_forward_tokens
from repro.evaluate.task_loading import quiet_custom_dataset_notice, resolve_specs
from repro.evaluate.tree_packing import TREE_MODEL_TYPES, TREE_WIDTH

SCORERS = ("stock", "item", "prefix")


@dataclass
class TaskTokens:
    task: str  # a leaf task
    parent: str  # the suite's task it belongs to (itself, or its group)
    items: int
    requests: int
    stock: int
    item: int
    prefix: int

    def to_json(self) -> dict:
        return asdict(self)


class _TokenizingLM(HFLM):
    """lm-eval's HFLM tokenization without a model: records each loglikelihood request's token ids."""

    def __init__(self, model_dir: str | Path, max_length: int | None = None):  # no HFLM.__init__: no weights
        # transformers: deferred so that importing this module does not load it
        from transformers import AutoConfig, AutoTokenizer

        LM.__init__(self)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.backend = "causal"
        self.add_bos_token = None
        self.custom_prefix_token_id = None
        self.logits_cache = True
        self.enable_thinking = False  # lm-eval's default (chat templates only)
        self.think_end_token = None
        config = AutoConfig.from_pretrained(str(model_dir))
        self.model_type = getattr(config, "model_type", None)
        self._max_length = max_length or resolve_max_length(config, self.tokenizer, default=self._DEFAULT_MAX_LENGTH)
        self.recorded: list[tuple[str, str, list[int], list[int]]] = []  # (task, doc id, context, continuation)
        self._pending: list = []

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        self._pending = list(requests)
        return super().loglikelihood(requests, disable_tqdm=True)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        for instance, (_, context, continuation) in zip(self._pending, requests, strict=True):
            self.recorded.append((instance.task_name, str(instance.doc_id), context, continuation))
        return [(0.0, False)] * len(requests)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return [0.0] * len(requests)  # perplexity tasks are not costed here

    def generate_until(self, requests, disable_tqdm: bool = False):
        return [""] * len(requests)  # generation tasks are not costed here


def count_suite_tokens(model_dir, tasks, *, include_path=None, limit=None, max_length: int | None = None,
                       session=None) -> list[TaskTokens]:
    """Per leaf task: items, loglikelihood requests and forward tokens of the three scorers.
    With an EvaluationSession, the tasks and requests built here are reused by its later evaluations."""
    specs, include_paths = resolve_specs(tasks, include_path)
    lm = _TokenizingLM(model_dir, max_length)
    with quiet_custom_dataset_notice():
        prepared = prepare_tasks(specs, include_paths, limit, session if session is not None else EvaluationSession())
        run_lm_eval(lm, prepared, limit)
    by_task: dict[str, list[tuple[str, list[int], list[int]]]] = {}
    for task, doc, context, continuation in lm.recorded:
        by_task.setdefault(task, []).append((doc, context, continuation))
    # the kit's scorer packs short requests as prefix trees for the model families that take packed rows
    tree_width = min(TREE_WIDTH, lm.max_length) if lm.model_type in TREE_MODEL_TYPES else None
    rows = []
    for task in sorted(by_task):
        entries = by_task[task]
        counts = count_forward_tokens([(None, c, k) for _, c, k in entries], lm.max_length, tree_width)
        rows.append(TaskTokens(task=task, parent=prepared.parent_of.get(task, task),
                               items=len({doc for doc, _, _ in entries}), requests=len(entries), **counts))
    return rows


def totals_by_parent(rows: list[TaskTokens]) -> dict[str, dict[str, int]]:
    """{suite task (a group sums its leaves): {items, requests, stock, item, prefix, leaves}}."""
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        entry = totals.setdefault(row.parent, dict.fromkeys(("items", "requests", *SCORERS, "leaves"), 0))
        for key in ("items", "requests", *SCORERS):
            entry[key] += getattr(row, key)
        entry["leaves"] += 1
    return totals


def format_token_budget(rows: list[TaskTokens], by_parent: bool = True) -> str:
    """A markdown table per suite task (or leaf), with the totals and the ratios stock / scorer."""
    table = totals_by_parent(rows) if by_parent else {r.task: {**r.to_json(), "leaves": 1} for r in rows}
    lines = ["| task | items | requests | stock lm-eval tokens | item-level scorer | prefix sharing | "
             "stock / item-level | stock / prefix sharing |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    total = dict.fromkeys(("items", "requests", *SCORERS), 0)
    for name, entry in table.items():
        for key in total:
            total[key] += entry[key]
        lines.append(_line(name, entry))
    if len(table) > 1:
        lines.append(_line("**total**", total))
    return "\n".join(lines)


def _line(name: str, entry: dict) -> str:
    def ratio(scorer: str) -> str:
        return f"{entry['stock'] / entry[scorer]:.2f}x" if entry[scorer] else "-"

    return (f"| {name} | {entry['items']:,} | {entry['requests']:,} | {entry['stock']:,} | {entry['item']:,} | "
            f"{entry['prefix']:,} | {ratio('item')} | {ratio('prefix')} |")
