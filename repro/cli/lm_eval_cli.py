"""`repro lm-eval ARGS`: the stock lm-eval CLI with repro's `hf-shared` model registered.

lm-eval 0.4.13 has no plugin entry point, so this wrapper registers the shared-context scorer and
then runs lm-eval's own command line unchanged (same arguments, options, outputs and exit codes):
`repro lm-eval --model hf-shared --model_args pretrained=DIR --tasks ...`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def run_lm_eval_cli(argv: Sequence[str]) -> int:
    """Run lm-eval's CLI with `argv` (as typed after `lm_eval`); returns its exit code."""
    # lm_eval and the library: loaded when the command runs, so that `repro --help` stays light
    from lm_eval.__main__ import cli_evaluate

    from repro.evaluate.lm_eval_registration import register_lm_eval_model

    register_lm_eval_model()
    saved = sys.argv
    sys.argv = ["lm-eval", *argv]  # lm-eval's parser reads sys.argv itself
    try:
        cli_evaluate()
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = saved
    return 0
