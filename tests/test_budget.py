"""Budget planning: GPU-hours from per-model costs, resolution, budget choice, costs updated from a run."""

import math
from pathlib import Path

import pytest
import yaml

from repro.budget import (
    Z_POWER,
    Settings,
    choose_for_budget,
    detectable_delta,
    evidence,
    gpu_hours,
    item_sd_points,
    update_from_run,
)
from repro.cli import main
from repro.costs import CostsError, load_costs, save_costs
from repro.facts.config import load_config
from repro.results import ResultRecord
from tests.item_results import build_plan, write_store

REPO = Path(__file__).resolve().parents[1]
COSTS = {
    "format": "repro-costs/1", "gpu": "test GPU",
    "bases": {"b3": {"eval_s_per_item": 0.01, "model_load_s": 10, "merge_s": {"default": 60, "tsv_m": 600}},
              "b8": {"eval_s_per_item": 0.03, "model_load_s": 20, "merge_s": {"default": 120}}},
    "suites": {"s": {"tasks": {"t1": {"items": 1000}, "t2": {"items": 300}, "g": {"items": 2000, "leaves": 4}}}},
    "resolution": {"item_disagreement": 0.1, "subset_sd_points": 0.4},
}


@pytest.fixture
def costs(tmp_path):
    path = tmp_path / "costs.yaml"
    path.write_text(yaml.safe_dump(COSTS))
    return load_costs(path)


def _settings(**kw):
    base = dict(bases=("b3",), methods=("task_arithmetic", "tsv_m"), sizes=(2, 12), subsets=5, per_task=None,
                pool_size=12, suite="s")
    return Settings(**{**base, **kw})


def test_gpu_hours_from_per_model_costs(costs):
    s = _settings()
    # evaluations: base + 12 singles + 2 methods x (5 subsets at n=2 + 1 at n=12) = 25; items 3300
    expected = (25 * (10 + 3300 * 0.01) + 6 * 60 + 6 * 600) / 3600
    assert gpu_hours(costs, s) == {"b3": pytest.approx(expected)}
    sampled = _settings(per_task=100)  # 100 + 100 + min(2000, 4 x 100) = 600 items
    assert gpu_hours(costs, sampled)["b3"] == pytest.approx((25 * (10 + 600 * 0.01) + 6 * 660) / 3600)


def test_resolution_formula(costs):
    s = _settings(per_task=100)
    sigma_i = 100 * math.sqrt(0.1 / 100 + 0.1 / 100 + 0.1 / 400) / 3
    assert item_sd_points(costs, s) == pytest.approx(sigma_i)
    assert detectable_delta(costs, s, 2) == pytest.approx(Z_POWER * math.sqrt(0.4**2 / 5 + sigma_i**2))
    assert detectable_delta(costs, s, 12) == pytest.approx(Z_POWER * math.sqrt(0.4**2 + sigma_i**2))
    assert detectable_delta(costs, _settings(per_task=None), 2) < detectable_delta(costs, s, 2)


def test_budget_choice_fits_and_more_budget_buys_more_evidence(costs):
    upper = _settings(bases=("b8", "b3"), methods=("task_arithmetic", "ties"), subsets=15)
    small, large = choose_for_budget(costs, upper, 1.0), choose_for_budget(costs, upper, 10.0)
    assert sum(gpu_hours(costs, small).values()) <= 1.0 and sum(gpu_hours(costs, large).values()) <= 10.0
    assert small.bases == ("b3",)  # the cheapest base first
    assert evidence(costs, large) > evidence(costs, small)
    assert choose_for_budget(costs, upper, 0.01) is None


def test_missing_cost_data_is_one_clear_error(costs):
    with pytest.raises(CostsError, match="no cost data for base.*b9"):
        gpu_hours(costs, _settings(bases=("b9",)))


def test_update_costs_from_a_runs_recorded_timings(tmp_path, costs):
    plan = build_plan(bases=("b3",))
    store = write_store(tmp_path / "runs", plan, lambda job: 0.5 + 0.1 * (job.kind == "merge"))
    for job_id in store.finished_ids():  # record timings as the runner does
        record = store.read_result(job_id).to_json()
        record["elapsed_s"] = 95 * 0.02 + (30.0 if record["job"]["kind"] == "merge" else 0.0)
        record["merge"] = {"elapsed_s": 30.0} if record["job"]["kind"] == "merge" else None
        for row in record["scores"]:
            row["n_items"] = {"alpha": 40, "beta": 25, "gamma": 30}[row["task"]]
        store.write_result(ResultRecord.from_json(record))
    changes = update_from_run(costs, plan, store)
    assert costs.bases["b3"].eval_s_per_item == pytest.approx(0.02)
    assert costs.bases["b3"].merge_s["task_arithmetic"] == pytest.approx(30.0)
    assert costs.bases["b3"].source.startswith("measured: run synthetic")
    assert 0 < costs.item_disagreement < 1 and costs.resolution_source.startswith("measured")
    assert any(c.startswith("b3: 0.02 s/item") for c in changes)
    save_costs(costs, tmp_path / "updated.yaml")
    again = load_costs(tmp_path / "updated.yaml")
    assert again.bases["b3"].eval_s_per_item == pytest.approx(0.02) and again.bases["b8"].model_load_s == 20


def test_plan_reduced_prints_gpu_hours_and_resolution(capsys, tmp_path):
    assert main(["plan", "--config", str(REPO / "configs" / "reduced.yaml"), "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "estimated GPU-hours:" in out and "resolution (smallest mean delta detected" in out
    assert "800 items per task" in out


def test_budget_flag_writes_a_loadable_config(capsys, tmp_path):
    target = REPO / "configs" / f".budget-test-{tmp_path.name}.yaml"
    try:
        assert main(["plan", "--config", str(REPO / "configs" / "paper.yaml"), "--runs-dir", str(tmp_path),
                     "--budget-gpu-hours", "20", "--write-config", str(target)]) == 0
        out = capsys.readouterr().out
        assert out.count("budget 20 GPU-hours -> ") == 1
        loaded = load_config(target)
        assert loaded.config.evaluation.item_sample is not None and len(loaded.config.methods) <= 2
        assert loaded.config.methods[0].name == "task_arithmetic"
    finally:
        target.unlink(missing_ok=True)
    assert main(["plan", "--config", str(REPO / "configs" / "paper.yaml"), "--runs-dir", str(tmp_path),
                 "--budget-gpu-hours", "0.5"]) == 2
    assert "buy nothing useful" in capsys.readouterr().err
