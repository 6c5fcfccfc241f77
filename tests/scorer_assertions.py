"""The assertions a shared-context scorer report (repro.evaluate.scorer_check.compare_backends) must pass
against stock lm-eval `hf`: every task has requests, float32 log-likelihoods within FLOAT32_TOLERANCE,
only near ties may differ, and without differing items the metrics are equal."""

from __future__ import annotations

from repro.evaluate.scorer_check import FLOAT32_TOLERANCE


def assert_scores_like_stock(report: dict, names) -> None:
    assert sorted(report) == sorted(names)
    for task, entry in report.items():
        assert entry.requests > 0, task
        assert entry.max_abs_diff <= FLOAT32_TOLERANCE, (task, entry.max_abs_diff)
        assert entry.only_near_ties_differ, (task, entry.differing_items)
        if not entry.differing_items:
            assert all(stock == ours for stock, ours in entry.metrics.values()), (task, entry.metrics)
