"""Which table or figure of the paper each rendered artifact corresponds to, and what differs from it.

The kit names every file after the paper's number (fig07_..., table1...), also for configs that are not the
paper's (the smoke and demo worlds, a new base, a reduced suite). `paper_caption` writes one sentence per
artifact for the page and the manifest: "Paper: <what the paper's artifact of that number shows>. Here:
<bases, suite, checkpoints, subsets or grid of this config>. Differs: <base, suite, ...>" (or "Same setting as
the paper"). It reads the config only (facts), never results.
"""

from __future__ import annotations

import re

PAPER_BASE_KEYS = {"llama-3.2-3b": "Llama 3.2 3B", "llama-3.1-8b": "Llama 3.1 8B", "qwen3-4b": "Qwen3 4B",
                   "qwen3-8b": "Qwen3 8B"}
PAPER_SUITE = "paper16"
GRID = "n = 2, 4, 6, 8, 10, 12, 15 random subsets per n (the one set of 12 at n = 12)"
PAPER_SIZES = [2, 4, 6, 8, 10, 12]
# number -> (what the paper's figure shows, its bases, its suite); per-base families name their base.
_PER_BASE = {
    7: "Llama 3.1 8B", 8: "Llama 3.2 3B", 9: "Qwen3 4B", 10: "Qwen3 8B",
    13: "Llama 3.2 3B", 14: "Llama 3.1 8B", 15: "Qwen3 4B", 16: "Qwen3 8B",
    19: "Llama 3.2 3B", 20: "Llama 3.1 8B", 21: "Qwen3 4B", 22: "Qwen3 8B",
    23: "Llama 3.2 3B", 24: "Llama 3.1 8B", 25: "Qwen3 4B", 26: "Qwen3 8B",
    27: "Qwen3 8B", 28: "Qwen3 4B",
}
_FIGURES = {
    3: f"average accuracy vs. n of TA, TIES and Model Stock on 4 bases x 12 in-the-wild checkpoints, {GRID}",
    4: f"task-vector L2 norm vs. n of the seven methods, 4 bases x 12 checkpoints, {GRID}",
    6: f"average accuracy vs. n of the subspace methods (TA+SB, TIES+SB, TSV-M, Iso-C), 4 bases, {GRID}",
    7: f"task-wise accuracy vs. n on each of the 16 benchmarks, one base, {GRID}",
    11: "Task Arithmetic of all 12 checkpoints, accuracy vs. λ (0.1 to 1.9 and 10), normalization on, 4 bases",
    12: "Task Arithmetic of all 12 checkpoints, accuracy vs. λ, normalization off, 4 bases",
    13: "TIES of all 12 checkpoints over a λ x density grid, accuracy vs. merged task-vector norm, one base",
    17: "TIES of all 12 checkpoints, accuracy vs. density (top-k%), 4 bases",
    18: "Subspace Boosting (TA+SB, TIES+SB) of all 12 checkpoints, accuracy vs. β from 0 to 1, 4 bases",
    19: "12 x 12 pairwise cosine similarity of the task vectors of one base (Appendix A indices)",
    23: "per pair of the 12 task vectors, the number of layers with positive / negative cosine, one base",
    27: "homogeneous merges of 3 medical and 3 math experts (Table 4): medical only, math only, all six, "
        "per method, on the medical and math suites (Table 5)",
}
_TABLES = {
    "table1": f"TA, Model Stock and TIES vs. the base, 4 bases x 12 checkpoints, suite paper16, {GRID}",
    "table2": f"Task Arithmetic vs. the best fine-tuned checkpoint, 4 bases x 12 checkpoints, suite paper16, {GRID}",
    "table3": f"TA+SB, TIES+SB, TSV-M and Iso-C vs. the base, 4 bases x 12 checkpoints, suite paper16, {GRID}",
    "table4": "the medical and math expert checkpoints (Hugging Face) of Qwen3 4B and Qwen3 8B",
    "table5": "the medical and math evaluation suites (lm-eval tasks) of the homogeneous merges",
    "table6": "n-fewshot of the 16 benchmarks of suite paper16",
    "appendix_e": "Figures 27-28 (homogeneous merges of Qwen3 8B and 4B) as numbers",
}


def _family_start(number: int) -> int:
    for start in (27, 23, 19, 13, 7):
        if number >= start:
            return start
    return number


def paper_caption(loaded, key: str) -> str:
    """One caption: the paper artifact this key corresponds to, this config's setting, and what differs."""
    cfg = loaded.config
    match = re.match(r"fig(\d+)", key)
    table = re.sub(r"_ci$", "", key)
    if match:
        number = int(match.group(1))
        what = _FIGURES.get(number) or _FIGURES.get(_family_start(number), "")
        label = f"Figure {number}"
        if number in _PER_BASE and _family_start(number) in (7, 13, 19, 23, 27):
            what = f"{what} ({_PER_BASE[number]})"
    elif table in _TABLES:
        label, what = (f"Table {table[-1]}" if table != "appendix_e" else "Appendix E"), _TABLES[table]
    else:
        return ""
    homogeneous = key.startswith(("fig27", "fig28", "table4", "table5", "appendix_e")) or (
        match is not None and 27 <= int(match.group(1)) <= 28)
    bases = [b for b in _bases(loaded, homogeneous) if key.endswith(f"_{b}")] or _bases(loaded, homogeneous)
    here, differs = _here(loaded, key, bases, homogeneous)
    paper_bases = {PAPER_BASE_KEYS.get(b) for b in bases}
    if None in paper_bases:
        differs.insert(0, "base (not one of the paper's: " + ", ".join(bases) + ")")
    world = f"; offline world ({cfg.world.kind}, {cfg.world_from or loaded.path.name})" if cfg.world else ""
    tail = ("Differs: " + "; ".join(differs) + ".") if differs else "Same setting as the paper."
    return f"Paper: {label} — {what}. Here: {', '.join(bases)}{world}; {here}. {tail}"


def _bases(loaded, homogeneous: bool) -> list[str]:
    if homogeneous and loaded.config.homogeneous is not None:
        return list(loaded.config.homogeneous.bases)
    return list(loaded.base_names)


def _here(loaded, key: str, bases: list[str], homogeneous: bool) -> tuple[str, list[str]]:
    """This config's setting for the artifact, and the differences from the paper's."""
    cfg = loaded.config
    differs: list[str] = []
    if homogeneous:
        suites = list(dict.fromkeys(s for e in cfg.homogeneous.experiments for s in e.suites))
        groups = cfg.homogeneous.groups or {}
        sizes = ", ".join(f"{g} {len(m)}" for g, m in groups.items()) or "lockfile groups"
        if set(suites) != {"medical", "math"}:
            differs.append(f"suites ({', '.join(suites)} instead of medical, math)")
        if cfg.world is not None:
            differs.append(f"expert groups ({sizes} offline fine-tunes instead of 3 medical + 3 math Hub checkpoints)")
        return f"suites {', '.join(suites)}", differs
    suite = cfg.evaluation.suite
    match = re.match(r"fig(\d+)", key)
    number = int(match.group(1)) if match else 0
    parts = []
    if not 19 <= number <= 26:  # the geometry evaluates nothing
        parts.append(f"suite {suite}")
        if suite != PAPER_SUITE:
            differs.append(f"suite ({suite} instead of paper16)")
    pools = sorted({loaded.pool_size(b) for b in bases}) if key != "table6" else []
    if pools:
        parts.append(f"{', '.join(map(str, pools))} checkpoints per base")
        if pools != [12]:
            differs.append(f"checkpoints per base ({', '.join(map(str, pools))} instead of 12)")
    if key.startswith(("table1", "table2", "table3")) or number in (3, 4, 6, 7, 8, 9, 10):
        sizes, per = cfg.merge.sizes, cfg.merge.subsets_per_size
        parts.append(f"n = {', '.join(map(str, sizes))}, {per} subset(s) per n")
        if sizes != PAPER_SIZES or per != 15:
            differs.append("merge sizes / subsets per n")
    for sweep in cfg.sweeps:
        if key.startswith(f"fig{sweep.figure:02d}") or (sweep.per_base and key.split("_", 1)[-1].startswith(sweep.name)):
            grid = "; ".join(f"{k} ∈ {{{', '.join(f'{v:g}' for v in vals)}}}" for k, vals in sweep.grid.items())
            parts.append(f"grid {grid}")
    return ", ".join(parts), differs
