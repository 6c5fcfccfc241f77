"""Evaluation through lm-evaluation-harness: suites, the runner adapter and the per-item store.

from repro.evaluate import load_suites, evaluate_model
suite = load_suites("configs/suites.yaml")["smoke"]
outcome = evaluate_model(model_dir_or_model, suite, dtype="float32")
outcome.average, outcome.rows, outcome.items

Importing this package registers the shared-context scorer in lm-eval's model registry as
`hf-shared` (a lazy entry: torch is imported only when the model is used).
"""

from repro.evaluate.harness import BACKENDS, DEFAULT_BACKEND, evaluate_model, lm_eval_version
from repro.evaluate.outcome import EvalOutcome, ScoreRow, read_items, write_items
from repro.evaluate.prepared import EvaluationSession
from repro.evaluate.suites import Suite, TaskSpec, get_suite, load_suites


def register_lm_eval_model() -> None:
    """Make `--model hf-shared` known to lm-eval (idempotent; lm-eval 0.4.13 has no plugin entry point)."""
    import lm_eval.models  # noqa: F401 - lm-eval's own lazy entries first (its registry skips them otherwise)
    from lm_eval.api.registry import model_registry

    if "hf-shared" not in model_registry:
        model_registry.register("hf-shared", target="repro.evaluate.shared_context:SharedContextHFLM")


register_lm_eval_model()

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "EvaluationSession",
    "EvalOutcome",
    "ScoreRow",
    "Suite",
    "TaskSpec",
    "evaluate_model",
    "get_suite",
    "lm_eval_version",
    "load_suites",
    "register_lm_eval_model",
    "read_items",
    "write_items",
]
