"""The closed sets of values a config and the code both accept: one home for each list of choices.

The config schema (repro.facts.config_schema) builds its `Literal` types from these tuples and the code that
acts on a value (the merge engine, the evaluation harness) checks against the same tuples, so a value the
config accepts is always one the code knows. Order matters: it is the order error messages list them in.
"""

from __future__ import annotations

from typing import Final

# dtypes a merged model is written in (`merge.out_dtype`, `repro merge --out-dtype`)
MERGE_OUT_DTYPES: Final = ("float32", "float16", "bfloat16")
DEFAULT_MERGE_OUT_DTYPE: Final = "bfloat16"

# dtypes a model is evaluated in (`evaluation.dtype`; a suite's `eval_dtype`); "auto" is the harness's own
# extra: the checkpoint's stored dtype (not a config value)
EVAL_DTYPES: Final = ("float16", "bfloat16", "float32")
HARNESS_DTYPES: Final = (*EVAL_DTYPES, "auto")
DEFAULT_EVAL_DTYPE: Final = "float16"  # the paper's dtype (App. F); a suite's eval_dtype overrides it

# lm-eval model behind an evaluation: "shared" (HF with shared-context scoring), "hf" (lm-eval's stock HF
# backend), "vllm" (GPU)
BACKENDS: Final = ("shared", "hf", "vllm")
DEFAULT_BACKEND: Final = "shared"

# where merges and evaluations run (`merge.device`, `evaluation.device`)
DEVICES: Final = ("auto", "cpu", "cuda")

# the lm-eval model name under which repro's shared-context HF model is registered (`--model hf-shared`)
SHARED_MODEL_NAME: Final = "hf-shared"
