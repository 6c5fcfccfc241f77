"""Prefix sharing across items (repro/evaluate/prefix_sharing.py) against lm-eval's stock HF backend.

Few-shot tasks with lm-eval's `first_n` sampler put one preamble before every item; the scorer runs
it once. Checked on tiny models: log-likelihoods equal stock `hf` within 1e-4 (float32), same greedy
flags and predictions; a preamble whose last characters merge with the item's first ones (a tokenizer
with merges across "\\n\\n"), items that share nothing, over-long (left-truncated) requests, single
requests per item and an empty context; and the token counts of the three scorers.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import pytest

from repro.evaluate import TaskSpec
from repro.evaluate.prefix_sharing import (
    Group,
    cluster_groups,
    count_forward_tokens,
    group_requests,
    plan_requests,
)
from repro.evaluate.scorer_check import FLOAT32_TOLERANCE, compare_backends, format_comparison

sys.path.insert(0, str(Path(__file__).parent))
from scorer_assertions import assert_scores_like_stock  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORDS = (
    "red green blue apple river stone cloud night summer bread music forest winter paper glass "
    "silver window garden mountain yellow orange purple table chair letter market ocean island"
).split()


def _phrase(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


# -- the plan, on token ids ---------------------------------------------------------------------------

def test_clusters_follow_the_prefix_tree_and_prefer_the_longer_shared_prefix():
    preamble_a, preamble_b = list(range(100, 140)), list(range(100, 110)) + list(range(300, 330))
    groups = [Group(prefix=preamble_a + [1, i], rows=[[5]]) for i in range(4)]  # 4 items after A
    groups += [Group(prefix=preamble_b + [2, i], rows=[[5]]) for i in range(3)]  # 3 items after B
    groups += [Group(prefix=[7, 8, 9], rows=[[5]]), Group(prefix=[7, 8, 10], rows=[[5]])]  # short, unshared
    clusters = cluster_groups(groups, min_shared=16)
    shared = sorted(len(c.shared) for c in clusters)
    # A and B share 10 tokens: one cluster over all 7 would save 6*10; two clusters save 3*41 + 2*41
    assert shared == [0, 41, 41]
    rest = [c for c in clusters if not c.shared][0]
    assert [g.prefix for g in rest.groups] == [[7, 8, 9], [7, 8, 10]]
    for cluster in clusters:
        for group in cluster.groups:
            assert group.prefix[: len(cluster.shared)] == cluster.shared
            assert len(group.prefix) > len(cluster.shared)  # every group keeps an own prefix token


def test_every_group_keeps_a_token_after_the_shared_prefix():
    # one item's context is the preamble itself: the shared prefix stops one token before its end
    groups = [Group(prefix=list(range(50)), rows=[[1]])] + [
        Group(prefix=list(range(50)) + [60 + i], rows=[[1]]) for i in range(3)]
    (cluster,) = cluster_groups(groups, min_shared=16)
    assert len(cluster.shared) == 49


def test_plan_sends_unshared_single_requests_and_truncated_ones_to_the_stock_path():
    preamble = list(range(10, 40))
    requests = [(None, preamble + [50 + i], [7]) for i in range(4)]  # one request per item, shared preamble
    requests.append((None, [1, 2, 3], [4]))  # alone: nothing to share
    requests.append((None, preamble + [9] * 40, [7, 8]))  # over max_length: lm-eval truncates it
    requests.append((None, [], [5, 6]))  # empty context (lm-eval adds the prefix token itself)
    clusters, stock = plan_requests(requests, max_length=64)
    assert stock == [4, 5, 6]
    (cluster,) = clusters
    assert cluster.shared == preamble[:-1]  # each group keeps one own prefix token (here: its last)
    item_clusters, item_stock = plan_requests(requests, max_length=64, share_across_items=False)
    assert item_clusters == [] and item_stock == list(range(7))


def test_token_counts_of_the_three_scorers():
    preamble = list(range(100, 120))  # 20 tokens
    requests = []
    for item in range(3):  # 3 items x 2 choices of 2 tokens, context = preamble + 2 own tokens
        context = preamble + [200 + item, 201]
        requests += [(None, context, [300 + c, 400]) for c in range(2)]
    counts = count_forward_tokens(requests, max_length=128)
    # stock: every (context + continuation[:-1]) = 22 + 1 tokens, 6 distinct inputs
    assert counts["stock"] == 6 * 23
    # item level: per item the context (22) once + 2 rows of 1 token
    assert counts["item"] == 3 * (22 + 2)
    # prefix sharing: the preamble once + per item 2 own tokens + 2 rows
    assert counts["prefix"] == 20 + 3 * (2 + 2)
    # single-token choices: stock's logits cache already shares the context
    letters = [(None, preamble + [200 + i], [500 + c]) for i in range(3) for c in range(4)]
    counts = count_forward_tokens(letters, max_length=128)
    assert counts["stock"] == counts["item"] == 3 * 21
    # an item's group prefix is its context minus the last token (that one is the row every letter is
    # scored after); each group keeps one own prefix token, so the shared prefix is 19 tokens here
    assert counts["prefix"] == 19 + 3 * (1 + 1)


def test_grouping_is_unchanged_for_the_item_level_scorer():
    requests = [(None, [5, 6, 7, 8], [9, 10, 11]), (None, [5, 6, 7, 8], [9, 13]), (None, [5, 6, 7], [14])]
    groups, stock = group_requests(requests, max_length=32)
    assert stock == [2] and groups[0].rows == [[9, 10], [9]]
    groups, stock = group_requests(requests, max_length=32, keep_single=True)
    assert stock == [] and len(groups) == 2


# -- against stock lm-eval, request by request ----------------------------------------------------------

def _merging_tokenizer():
    """Byte-level BPE whose merges join "\\n\\n" with the next letter: a preamble ending in "\\n\\n"
    does not end on a token boundary once an item follows it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from repro.worlds.tiny import SPECIAL_TOKENS, TINY_DIMS

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    merges = [("Ċ", "Ċ")]
    vocab["ĊĊ"] = len(vocab)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        merges.append(("ĊĊ", letter))
        vocab["ĊĊ" + letter] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<|pad|>", bos_token="<|bos|>",
                                   eos_token="<|eos|>", model_max_length=TINY_DIMS["max_position_embeddings"])


@pytest.fixture(scope="module")
def merging_model(tmp_path_factory):
    from repro.worlds.tiny import build_base_model, save_model_dir

    return save_model_dir(build_base_model("llama", seed=23), _merging_tokenizer(),
                          tmp_path_factory.mktemp("merging") / "model")


def _fewshot_requests(seed: int):
    """Instances as a few-shot multiple-choice task builds them, plus the cases the plan must route."""
    from lm_eval.api.instance import Instance

    rng = random.Random(seed)
    preambles = ["".join(f"{_phrase(rng, 4, 9)} means {rng.choice(WORDS)}\n\n" for _ in range(3))
                 for _ in range(2)]
    requests, doc_id = [], 0

    def add(context, continuations):
        nonlocal doc_id
        for i, cont in enumerate(continuations):
            requests.append(Instance("loglikelihood", {}, (context, cont), i, ("t", doc_id, 1)))
        doc_id += 1

    for _ in range(6):  # multi-token choices after preamble 0; the item's first letter merges with "\n\n"
        add(preambles[0] + _phrase(rng, 2, 6) + " means", [" " + _phrase(rng, 1, 3) for _ in range(rng.randint(2, 4))])
    for _ in range(5):  # single-token choices after preamble 1
        add(preambles[1] + _phrase(rng, 2, 6) + " is", [" A", " B", " C"])
    for _ in range(3):  # one request per item (a loglikelihood task), preamble 0
        add(preambles[0] + _phrase(rng, 2, 5) + " means", [" " + _phrase(rng, 1, 2)])
    add("nothing shared " + _phrase(rng, 1, 3), [" x", " yz"])  # shares no preamble
    add(preambles[0] + "z" * 600 + " means", [" red", " blue"])  # over-long: left-truncated by lm-eval
    add("", ["alone at the start"])  # empty context
    return requests, preambles


@pytest.mark.parametrize("batch_size", [3, 64])
def test_prefix_sharing_scores_like_stock_hf_with_merged_boundary_tokens(merging_model, batch_size):
    from lm_eval.models.huggingface import HFLM

    from repro.evaluate.shared_context import SharedContextHFLM

    requests, preambles = _fewshot_requests(seed=random.randrange(10**6))
    stock = HFLM(pretrained=str(merging_model), dtype="float32", batch_size=batch_size, device="cpu")
    expected = stock.loglikelihood(requests, disable_tqdm=True)
    forward = {}
    for share in (True, False):
        ours = SharedContextHFLM(pretrained=str(merging_model), dtype="float32", batch_size=batch_size,
                                 device="cpu", token_cache={}, share_prefix=share, pack_trees=False)
        got = ours.loglikelihood(requests, disable_tqdm=True)
        for request, (a, greedy_a), (b, greedy_b) in zip(requests, got, expected, strict=True):
            assert abs(a - b) <= FLOAT32_TOLERANCE, (share, request.args, a, b)
            assert greedy_a == greedy_b, request.args
        forward[share] = ours.forward_tokens
    assert forward[True] < forward[False]
    packed = SharedContextHFLM(pretrained=str(merging_model), dtype="float32", batch_size=batch_size, device="cpu",
                               token_cache={})  # short requests as prefix trees, the rest as above
    for request, (a, greedy_a), (b, greedy_b) in zip(requests, packed.loglikelihood(requests, disable_tqdm=True),
                                                     expected, strict=True):
        assert abs(a - b) <= FLOAT32_TOLERANCE, ("packed", request.args, a, b)
        assert greedy_a == greedy_b, request.args

    # the shared prefix is cut on tokens: it stops before the "\n\n" that merges with the item's first letter
    encoded = [(None, *ours.token_cache[r.args]) for r in requests]
    clusters, stock_indices = plan_requests(encoded, ours.max_length)
    shared_texts = [ours.tokenizer.decode(c.shared) for c in clusters if c.shared]
    assert any(preambles[0].startswith(t) for t in shared_texts)
    assert preambles[0].rstrip("\n") + "\n" not in [t for t in shared_texts]
    assert all(not t.endswith("\n\n") for t in shared_texts)
    long_index = next(i for i, r in enumerate(requests) if "zzzz" in r.args[0])
    alone = next(i for i, r in enumerate(requests) if r.args[0].startswith("nothing shared"))
    assert long_index in stock_indices and alone not in [m[0] for c in clusters if c.shared
                                                          for g in c.groups for m in g.members]


# -- end to end: lm-eval tasks with first_n few-shot sampling ----------------------------------------------

TASK_YAML = """task: {name}
custom_dataset: !function jsonl_dataset.load_jsonl
dataset_kwargs:
  data_file: {name}.jsonl
output_type: {output_type}
test_split: test
fewshot_split: test
num_fewshot: {shots}
fewshot_config:
  sampler: first_n
doc_to_text: "{text}"
doc_to_target: {target}
{extra}metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
{norm}metadata:
  version: 1.0
"""
NORM = "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n"


def _write_fewshot_tasks(folder: Path, seed: int) -> dict[str, int]:
    """Three local first_n few-shot tasks; returns {name: n-shot}."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "repro" / "evaluate" / "local_dataset.py", folder / "jsonl_dataset.py")
    tasks = {
        # like leaderboard_mmlu_pro: 5-shot first_n, single-letter choices
        "fs_letters": ("multiple_choice", 5, "Question: {{question}}\\nAnswer:", "label",
                       "doc_to_choice: [\"A\", \"B\", \"C\", \"D\"]\n", NORM,
                       lambda: {"question": _phrase(rng, 3, 10), "label": rng.randrange(4)}),
        # like leaderboard_bbh: 3-shot first_n, multi-token answer texts
        "fs_text": ("multiple_choice", 3, "Q: {{question}}\\nA:", "label", "doc_to_choice: choices\n", NORM,
                    lambda: {"question": _phrase(rng, 3, 10),
                             "choices": [f"{_phrase(rng, 1, 4)} {i}" for i in range(rng.randint(2, 4))],
                             "label": 0}),
        # one request per item after a 2-shot preamble
        "fs_loglikelihood": ("loglikelihood", 2, "{{question}}", "answer", "", "",
                             lambda: {"question": _phrase(rng, 2, 8), "answer": " " + _phrase(rng, 1, 3)}),
    }
    for name, (output_type, shots, text, target, extra, norm, make) in tasks.items():
        rows = [make() for _ in range(14)]
        (folder / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        (folder / f"{name}.yaml").write_text(TASK_YAML.format(
            name=name, output_type=output_type, shots=shots, text=text, target=target, extra=extra, norm=norm))
    return {name: spec[1] for name, spec in tasks.items()}


def test_fewshot_first_n_tasks_score_like_stock_hf(tiny_world, tmp_path, capsys):
    folder = tmp_path / "fewshot-tasks"
    names = _write_fewshot_tasks(folder, seed=random.randrange(10**6))
    specs = [TaskSpec(name=n, num_fewshot=shots) for n, shots in names.items()]
    report = compare_backends(tiny_world.base, specs, include_path=folder, batch_size=8)
    with capsys.disabled():
        print(f"\n{tiny_world.base.parent.name} few-shot first_n\n{format_comparison(report)}")
    assert_scores_like_stock(report, names)


# -- the token budget: counted without a model, equal to what the scorer runs ----------------------------

def test_counted_tokens_equal_the_scorers_forward_tokens(tiny_llama_world, tmp_path):
    from repro.evaluate import EvaluationSession
    from repro.evaluate.harness import build_lm, prepare_tasks, run_lm_eval
    from repro.evaluate.task_loading import resolve_specs
    from repro.evaluate.token_budget import count_suite_tokens, totals_by_parent

    folder = tmp_path / "fewshot-tasks"
    names = _write_fewshot_tasks(folder, seed=random.randrange(10**6))
    specs = [TaskSpec(name=n, num_fewshot=shots) for n, shots in names.items()]
    rows = count_suite_tokens(tiny_llama_world.base, specs, include_path=folder)
    by_task = {row.task: row for row in rows}
    assert sorted(by_task) == sorted(names)
    assert all(row.items == 14 for row in rows)
    assert by_task["fs_letters"].requests == 14 * 4 and by_task["fs_loglikelihood"].requests == 14
    # letters: stock's logits cache already shares each item's context; the preamble is what is left
    assert by_task["fs_letters"].stock == by_task["fs_letters"].item > by_task["fs_letters"].prefix
    assert by_task["fs_text"].stock > by_task["fs_text"].item > by_task["fs_text"].prefix
    totals = totals_by_parent(rows)
    assert set(totals) == set(names) and totals["fs_text"]["leaves"] == 1

    # batch size 1: no padding, so the scorer's own forward-token counter equals the count
    spec_list, include_paths = resolve_specs(specs, folder)
    for share, key in ((True, "prefix"), (False, "item")):
        session = EvaluationSession()
        prepared = prepare_tasks(spec_list, include_paths, None, session)
        lm = build_lm(tiny_llama_world.base, tokenizer=None, dtype="float32", batch_size=1, device="cpu")
        lm.share_prefix = share
        run_lm_eval(lm, prepared, None)
        assert lm.forward_tokens == sum(getattr(row, key) for row in rows), key


def test_count_tokens_cli_prints_the_budget_and_writes_costs_the_planner_uses(tiny_llama_world, tmp_path, capsys):
    import yaml

    from repro.budget import Settings, evaluated_tokens, gpu_hours
    from repro.cli import main
    from repro.costs import load_costs

    costs_path = tmp_path / "costs.yaml"
    costs_path.write_text(yaml.safe_dump({
        "format": "repro-costs/1", "gpu": "test GPU",
        "bases": {"b": {"eval_s_per_item": 0.5, "model_load_s": 0, "merge_s": {"default": 0},
                        "eval_s_per_1k_tokens": 2.0}},
        "suites": {"smoke": {"source": "guess", "tasks": {"smoke_arithmetic": {"items": 1}}}},
        "resolution": {"item_disagreement": 0.1, "subset_sd_points": 0.4}}))
    code = main(["evaluate", "--model", str(tiny_llama_world.base), "--suite", "smoke", "--count-tokens",
                 "--update-costs", str(costs_path)])
    out = capsys.readouterr().out
    assert code == 0
    for task in ("smoke_arithmetic", "smoke_antonyms", "smoke_capitals", "**total**"):
        assert f"| {task} | " in out
    costs = load_costs(costs_path)
    tasks = costs.suites["smoke"]
    assert sorted(tasks) == ["smoke_antonyms", "smoke_arithmetic", "smoke_capitals"]
    assert all(t.items == 40 and t.tokens_per_item["prefix"] <= t.tokens_per_item["stock"] for t in tasks.values())
    assert costs.raw["suites"]["smoke"]["source"].startswith("counted:")
    settings = Settings(bases=("b",), methods=("task_arithmetic",), sizes=(12,), subsets=1, per_task=None,
                        pool_size=12, suite="smoke")
    tokens = evaluated_tokens(costs, settings)
    assert tokens == pytest.approx(sum(t.items * t.tokens_per_item["prefix"] for t in tasks.values()))
    evaluations = 1 + 12 + 1
    assert gpu_hours(costs, settings)["b"] == pytest.approx(evaluations * tokens / 1000 * 2.0 / 3600)

    # --update-costs needs --count-tokens and a suite: exit 2, the costs file untouched
    before = costs_path.read_text()
    assert main(["evaluate", "--model", str(tiny_llama_world.base), "--tasks", "smoke_arithmetic",
                 "--update-costs", str(costs_path)]) == 2
    err = capsys.readouterr().err
    assert "--update-costs needs --count-tokens" in err and "--update-costs needs --suite" in err
    assert costs_path.read_text() == before
