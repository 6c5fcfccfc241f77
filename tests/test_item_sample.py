"""Seeded per-task item samples: identical items for every model, recorded in the plan, exclusive with limit."""

from pathlib import Path

import pytest
import yaml

from repro.errors import ConfigError
from repro.evaluate import evaluate_model, load_suites
from repro.evaluate.item_sample import sample_indices
from repro.facts.config import load_config
from repro.plan import build_plan

REPO = Path(__file__).resolve().parents[1]


def test_sample_depends_only_on_task_size_count_and_seed():
    a = sample_indices("arc_easy", 2376, 100, seed=3)
    assert a == sample_indices("arc_easy", 2376, 100, seed=3) and len(set(a)) == 100 and a == sorted(a)
    assert a != sample_indices("arc_easy", 2376, 100, seed=4)
    assert a != sample_indices("arc_challenge", 2376, 100, seed=3)
    assert sample_indices("tiny", 7, 100, seed=0) == list(range(7))


def test_every_model_is_scored_on_the_same_sampled_items(tiny_llama_world):
    suite = load_suites(REPO / "configs" / "suites.yaml")["smoke"]
    sample = {"per_task": 12, "seed": 5}
    base = evaluate_model(tiny_llama_world.base, suite, device="cpu", item_sample=sample)
    other = evaluate_model(tiny_llama_world.checkpoints[0], suite, device="cpu", item_sample=sample)
    for task, pairs in base.items.items():
        expected = [str(i) for i in sample_indices(task, 40, 12, seed=5)]
        assert [doc for doc, _ in pairs] == expected
        assert [doc for doc, _ in other.items[task]] == expected


def _config(tmp_path, evaluation_extra):
    data = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    data["evaluation"].update(evaluation_extra)
    data.pop("report", None)  # its appendix configs are not copied; the report section does not affect job ids
    (tmp_path / "configs").mkdir(exist_ok=True)
    path = tmp_path / "configs" / "x.yaml"
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "configs" / "suites.yaml").write_text((REPO / "configs" / "suites.yaml").read_text())
    return path


def test_item_sample_changes_job_ids_only_when_set(tmp_path):
    plain = build_plan(load_config(REPO / "configs" / "smoke.yaml"))
    same = build_plan(load_config(_config(tmp_path, {})))
    sampled = build_plan(load_config(_config(tmp_path, {"item_sample": {"per_task": 10, "seed": 1}})))
    assert [j.id for j in plain.jobs] == [j.id for j in same.jobs]
    assert not set(j.id for j in plain.jobs) & set(j.id for j in sampled.jobs)


def test_limit_and_item_sample_exclude_each_other(tmp_path):
    with pytest.raises(ConfigError, match="evaluation.*either `limit`"):
        load_config(_config(tmp_path, {"limit": 5, "item_sample": {"per_task": 10}}))
