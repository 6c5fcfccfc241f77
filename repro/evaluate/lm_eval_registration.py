"""Make repro's shared-context model known to lm-eval by name (`--model hf-shared`), when a caller asks.

lm-eval 0.4.13 has no plugin entry point, so the name goes into lm-eval's model registry with a lazy
target: nothing of repro (and no torch) is imported until lm-eval builds that model. Only the stock lm-eval
CLI wrapper (`repro lm-eval`) needs the name; repro's own evaluations build the model class directly.
Importing this module changes nothing; calling `register_lm_eval_model()` does (idempotent).
"""

from __future__ import annotations

from repro.facts.choices import SHARED_MODEL_NAME

SHARED_MODEL_TARGET = "repro.evaluate.shared_context:SharedContextHFLM"


def register_lm_eval_model() -> None:
    """Register `hf-shared` in lm-eval's model registry (a lazy entry; a second call does nothing)."""
    # lm_eval: deferred so that importing this module does not load it
    import lm_eval.models  # noqa: F401 - lm-eval's own lazy entries first (its registry skips them otherwise)
    from lm_eval.api.registry import model_registry

    if SHARED_MODEL_NAME not in model_registry:
        model_registry.register(SHARED_MODEL_NAME, target=SHARED_MODEL_TARGET)
