"""A plain-text table of an EvalOutcome for the terminal."""

from __future__ import annotations

from tabulate import tabulate

from repro.evaluate.outcome import EvalOutcome


def format_score_table(outcome: EvalOutcome) -> str:
    rows = []
    for row in outcome.rows:
        task = row.task if row.parent is None else f"└ {row.task}"
        rows.append(
            [
                task,
                row.metric + (" *" if row.primary else ""),
                f"{row.value:.4f}",
                "" if row.stderr is None else f"{row.stderr:.4f}",
                "" if row.n_shot is None else row.n_shot,
                "" if row.n_items is None else row.n_items,
            ]
        )
    table = tabulate(
        rows,
        headers=["task", "metric", "value", "stderr", "n-shot", "items"],
        tablefmt="github",
        disable_numparse=True,
    )
    footer = []
    if outcome.average is not None:
        n = sum(1 for row in outcome.rows if row.primary)
        footer.append(f"average (* metrics, unweighted mean of {n} tasks): {outcome.average:.4f}")
    footer.append(f"lm-eval {outcome.lm_eval_version}")
    return table + "\n" + "\n".join(footer)
