"""Evaluation through lm-evaluation-harness: suites, the runner adapter and the per-item store.

from repro.evaluate import load_suites, evaluate_model
suite = load_suites("configs/suites.yaml")["smoke"]
outcome = evaluate_model(model_dir_or_model, suite, dtype="float32")
outcome.average, outcome.rows, outcome.items

Importing this package changes no state of lm-eval: `repro lm-eval` registers the shared-context
scorer as `hf-shared` itself (repro.evaluate.lm_eval_registration).
"""

from repro.evaluate.harness import evaluate_model, lm_eval_version
from repro.evaluate.outcome import EvalOutcome, ScoreRow, read_items, write_items
from repro.evaluate.prepared import EvaluationSession
from repro.facts.suites import Suite, TaskSpec, get_suite, load_suites

__all__ = [
    "EvaluationSession",
    "EvalOutcome",
    "ScoreRow",
    "Suite",
    "TaskSpec",
    "evaluate_model",
    "get_suite",
    "lm_eval_version",
    "load_suites",
    "read_items",
    "write_items",
]
