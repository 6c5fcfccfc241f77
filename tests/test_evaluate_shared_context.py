"""The shared-context scorer (`hf-shared`) against lm-eval's stock HF backend, on tiny models.

Local tasks with multi-token choices sharing leading tokens, few-shot contexts, contexts ending in a
space (lm-eval moves it into the continuation), single-token choices and plain loglikelihood
requests (no group: the stock path). Tolerance: 1e-4 absolute on float32 log-likelihoods
(repro.evaluate.scorer_check.FLOAT32_TOLERANCE); predictions must be identical except near ties.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import pytest

from repro.evaluate import EvaluationSession, TaskSpec, evaluate_model
from repro.evaluate.prefix_sharing import group_requests, plan_batches
from repro.evaluate.scorer_check import FLOAT32_TOLERANCE, compare_backends, format_comparison

sys.path.insert(0, str(Path(__file__).parent))
from scorer_assertions import assert_scores_like_stock  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORDS = (
    "red green blue apple river stone cloud night summer bread music forest winter paper glass "
    "silver window garden mountain yellow orange purple table chair letter market ocean island"
).split()

TASK_YAML = """task: {name}
custom_dataset: !function jsonl_dataset.load_jsonl
dataset_kwargs:
  data_file: {name}.jsonl
output_type: {output_type}
test_split: test
{extra}doc_to_text: "{text}"
doc_to_target: {target}
metric_list:
{metrics}metadata:
  version: 1.0
"""
MC_METRICS = "  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n" \
             "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n"
LL_METRICS = "  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"


def _phrase(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def _write_tasks(folder: Path, seed: int) -> list[str]:
    """Four local tasks; returns their names."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "repro" / "evaluate" / "local_dataset.py", folder / "jsonl_dataset.py")
    tasks = {
        # multi-token choices that share their first tokens ("(a) ..."), 2-shot contexts
        "sc_fewshot": ("multiple_choice", "fewshot_split: test\nnum_fewshot: 2\ndoc_to_choice: choices\n",
                       "Question: {{question}}\\nAnswer:", "label", MC_METRICS,
                       lambda: {"question": _phrase(rng, 3, 12),
                                "choices": [f"({'abcd'[i]}) {_phrase(rng, 1, 5)}" for i in range(4)],
                                "label": rng.randrange(4)}),
        # the context ends with a space, the choices have no leading delimiter
        "sc_trailing_space": ("multiple_choice", "target_delimiter: \"\"\ndoc_to_choice: choices\n",
                              "{{question}} is ", "label", MC_METRICS,
                              lambda: {"question": _phrase(rng, 2, 8),
                                       "choices": [_phrase(rng, 1, 4) for _ in range(rng.randint(2, 5))],
                                       "label": 0}),
        # single-token choices: every input is the context itself
        "sc_letters": ("multiple_choice", "doc_to_choice: [\"A\", \"B\", \"C\", \"D\"]\n",
                       "{{question}}\\nAnswer:", "label", MC_METRICS,
                       lambda: {"question": _phrase(rng, 4, 20), "label": rng.randrange(4)}),
        # one request per document: nothing to share, the stock path scores it
        "sc_loglikelihood": ("loglikelihood", "", "{{question}}", "answer", LL_METRICS,
                             lambda: {"question": _phrase(rng, 2, 9), "answer": " " + _phrase(rng, 1, 3)}),
    }
    for name, (output_type, extra, text, target, metrics, make) in tasks.items():
        rows = [make() for _ in range(12)]
        for row in rows:  # choices of one item must differ for a well-defined prediction
            if "choices" in row:
                row["choices"] = [f"{c} {i}" for i, c in enumerate(row["choices"])]
        (folder / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        (folder / f"{name}.yaml").write_text(
            TASK_YAML.format(name=name, output_type=output_type, extra=extra, text=text, target=target,
                             metrics=metrics)
        )
    return list(tasks)


@pytest.fixture(scope="module")
def local_tasks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shared-context-tasks")
    return folder, _write_tasks(folder, seed=random.randrange(10**6))


@pytest.mark.parametrize("batch_size", [3, 64])
def test_shared_scorer_matches_stock_hf_backend(tiny_world, local_tasks, batch_size, capsys):
    folder, names = local_tasks
    report = compare_backends(
        tiny_world.base, [TaskSpec(name=n) for n in names], include_path=folder, batch_size=batch_size
    )
    with capsys.disabled():
        print(f"\n{tiny_world.base.parent.name} batch {batch_size}\n{format_comparison(report)}")
    assert_scores_like_stock(report, names)
    tokens = next(iter(report.values())).forward_tokens
    assert tokens["shared"] > 0


def test_grouping_uses_the_token_sequences_not_the_strings():
    # (context tokens, continuation tokens) as lm-eval's _encode_pair builds them
    requests = [
        (("ctx", " (a) x"), [5, 6, 7, 8], [9, 10, 11]),
        (("ctx", " (a) y"), [5, 6, 7, 8], [9, 10, 12]),
        (("ctx", " (b) z"), [5, 6, 7, 8], [9, 13]),
        (("other", " w"), [5, 6, 7], [14]),  # a different context: alone, stock path
        (("long", " v"), [1] * 30, [2] * 5),  # longer than max_length + 1: truncated by lm-eval, stock path
    ]
    groups, stock = group_requests(requests, max_length=32)
    assert stock == [3, 4]
    (group,) = groups
    # the shared prefix never enters the continuation: it stops at the context tokens
    assert group.prefix == [5, 6, 7, 8]
    # equal inputs (context + continuation minus its last token) are computed once
    assert group.rows == [[9, 10], [9]]
    assert group.members == [(0, 0, 3), (1, 0, 3), (2, 1, 2)]


def test_identical_inputs_share_one_row_and_large_groups_get_their_own_batch():
    letters = [(("q", f" {c}"), [3, 4, 5], [10 + i]) for i, c in enumerate("ABCD")]
    groups, stock = group_requests(letters, max_length=64)
    assert stock == []
    (group,) = groups
    assert group.prefix == [3, 4] and group.rows == [[5]]  # one row scores all four single tokens
    big = [(("c", str(i)), [7, 8], [20 + i, 1]) for i in range(5)]
    small = [(("d", str(i)), [9, 9, 9], [30 + i]) for i in range(2)]
    groups, _ = group_requests(big + small, max_length=64)
    batches = plan_batches(groups, max_rows=3)
    # the 5-row group exceeds max_rows: a batch of its own (its rows are chunked when scored)
    assert [[len(g.rows) for g in b] for b in batches] == [[5], [1]]


def test_hf_shared_is_in_lm_eval_registry():
    from lm_eval.api.registry import get_model

    from repro.evaluate.lm_eval_registration import register_lm_eval_model
    from repro.evaluate.shared_context import SharedContextHFLM

    register_lm_eval_model()

    assert get_model("hf-shared") is SharedContextHFLM
    from lm_eval.models.huggingface import HFLM

    assert get_model("hf") is HFLM


def test_repro_lm_eval_runs_the_stock_cli_with_hf_shared(tiny_llama_world, tmp_path):
    from repro.cli import main

    out = tmp_path / "out"
    code = main(
        ["lm-eval", "--model", "hf-shared", "--model_args", f"pretrained={tiny_llama_world.base},dtype=float32",
         "--tasks", "smoke_capitals", "--include_path", str(REPO / "tasks" / "smoke"), "--device", "cpu",
         "--limit", "6", "--batch_size", "4", "--output_path", str(out)]
    )  # fmt: skip
    assert code == 0
    (results_path,) = out.rglob("results_*.json")
    results = json.loads(results_path.read_text())
    assert results["config"]["model"] == "hf-shared"
    assert "acc,none" in results["results"]["smoke_capitals"]


def test_requests_are_built_once_per_session_and_results_equal_fresh_evaluations(tiny_qwen3_world):
    suite = [TaskSpec(name="smoke_arithmetic"), TaskSpec(name="smoke_antonyms")]
    include = REPO / "tasks" / "smoke"
    session = EvaluationSession()
    models = [tiny_qwen3_world.base, tiny_qwen3_world.checkpoints[0], tiny_qwen3_world.base]
    shared = [evaluate_model(m, suite, include_path=include, dtype="float32", limit=15, session=session)
              for m in models]
    assert session.reused_tasks == 2
    (tokens,) = session._tokens.values()
    assert len(tokens) > 0  # token ids of every request, built by the first model
    fresh = [evaluate_model(m, suite, include_path=include, dtype="float32", limit=15,
                            session=EvaluationSession()) for m in models[:2]]

    def comparable(outcome):
        data = outcome.to_json()
        for row in data["rows"]:
            row.pop("date")
        return data, outcome.items

    assert comparable(shared[0]) == comparable(fresh[0]) == comparable(shared[2])
    assert comparable(shared[1]) == comparable(fresh[1])
    assert shared[0].rows[0].backend == "shared"
    stock = evaluate_model(models[0], suite, include_path=include, dtype="float32", limit=15,
                           session=session, backend="hf")
    assert stock.rows[0].backend == "hf" and stock.forward_tokens is None
    assert stock.items == shared[0].items


def test_auto_batch_size_uses_lm_evals_probe_and_scores_like_stock(tiny_llama_world):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from repro.evaluate.shared_context import SharedContextHFLM

    rng = random.Random(5)
    requests = []
    for doc_id in range(6):
        context = "Question: " + _phrase(rng, 3, 15) + "\nAnswer:"
        for i in range(rng.randint(2, 5)):
            requests.append(Instance("loglikelihood", {}, (context, " " + _phrase(rng, 1, 4)), i,
                                     ("t", doc_id, 1)))
    requests.append(Instance("loglikelihood", {}, ("", "alone at the start"), 0, ("t", 99, 1)))  # empty context
    ours = SharedContextHFLM(pretrained=str(tiny_llama_world.base), dtype="float32", batch_size="auto",
                             max_batch_size=8, device="cpu", token_cache={})
    stock = HFLM(pretrained=str(tiny_llama_world.base), dtype="float32", batch_size=4, device="cpu")
    got = ours.loglikelihood(requests, disable_tqdm=True)
    expected = stock.loglikelihood(requests, disable_tqdm=True)
    assert len(ours.token_cache) == len({r.args for r in requests})
    for (a, greedy_a), (b, greedy_b) in zip(got, expected, strict=True):
        assert abs(a - b) <= FLOAT32_TOLERANCE and greedy_a == greedy_b
    # a second call reuses the cached token ids and gives the same numbers
    again = ours.loglikelihood(requests, disable_tqdm=True)
    assert again == got


def test_sliding_window_models_leave_long_requests_to_the_stock_path():
    from types import SimpleNamespace

    from repro.evaluate.shared_context import _sliding_window

    assert _sliding_window(SimpleNamespace()) is None  # Llama: no window
    assert _sliding_window(SimpleNamespace(sliding_window=4096, use_sliding_window=False)) is None  # Qwen3
    assert _sliding_window(SimpleNamespace(sliding_window=8)) == 8  # Mistral-style
    requests = [(("c", str(i)), list(range(1, 8)), [20 + i, 30]) for i in range(3)]
    groups, stock = group_requests(requests, max_length=8)  # 9 tokens fit a window of 8 (+1 shifted off)
    assert len(groups) == 1 and stock == []
    groups, stock = group_requests(requests, max_length=7)
    assert groups == [] and stock == [0, 1, 2]
