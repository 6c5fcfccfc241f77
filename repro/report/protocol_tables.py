"""Tables 4 and 5 of the paper (Appendix E), rendered from the protocol data, not from results.

- Table 4: the homogeneous expert groups of each base (checkpoints.lock `homogeneous`), with the pinned
  revision of each checkpoint ("unresolved" until `make lock`).
- Table 5: the tasks of each domain suite the homogeneous experiments evaluate on (configs/suites.yaml),
  one column per suite.
Both use the Markdown / CSV / LaTeX writers of Tables 1-3.
"""

from __future__ import annotations

from itertools import zip_longest

from repro.report.table_text import PaperTable


def homogeneous_bases(loaded) -> list[str]:
    """Bases whose homogeneous groups the config uses (its `homogeneous:` bases)."""
    if loaded.config.homogeneous is None:
        return []
    if loaded.config.world is not None:
        return list(loaded.config.homogeneous.bases) if loaded.config.homogeneous.groups else []
    if loaded.lock is None:
        return []
    return [b for b in loaded.config.homogeneous.bases if loaded.lock.bases[b].homogeneous]


def build_table4(loaded) -> PaperTable | None:
    bases = homogeneous_bases(loaded)
    if not bases:
        return None
    if loaded.config.world is not None:
        return _world_table4(loaded, bases)
    groups = list(dict.fromkeys(g for e in loaded.config.homogeneous.experiments for g in e.groups))
    rows = []
    for base in bases:
        for group in groups:
            for k, entry in enumerate(loaded.lock.group(base, group)):
                first = k == 0
                rows.append([base if first else "", group.capitalize() if first else "", entry.repo_id,
                             entry.revision[:12] if entry.revision else "unresolved"])
    footnote = (f"Table 4: domain-specific checkpoints of the homogeneous merges, from {loaded.config.lockfile} "
                "(revision: the pinned commit, first 12 hex digits).")
    return PaperTable(["Base Model", "Domain", "Checkpoint Name", "Revision"], rows, footnote)


def _world_table4(loaded, bases: list[str]) -> PaperTable:
    """Table 4 of an offline world: its expert groups (`homogeneous.groups`), each checkpoint by index and
    fine-tune name, with what it was trained on (the world recipe's description)."""
    finetunes = list(getattr(loaded.config.world, "finetunes", []))
    groups = list(dict.fromkeys(g for e in loaded.config.homogeneous.experiments for g in e.groups))
    rows = []
    for base in bases:
        for group in groups:
            for k, index in enumerate(loaded.homogeneous_indices(base, group)):
                tune = finetunes[index - 1] if finetunes else None
                name = f"ft-{index:02d} {tune.name}" if tune else f"checkpoint {index}"
                trained = tune.description if tune else "generated offline (repro.worlds.tiny)"
                rows.append([base if k == 0 else "", group.capitalize() if k == 0 else "",
                             name, trained])
    source = loaded.config.world_from or loaded.path.name
    footnote = (f"Table 4 (offline world): the expert groups of the homogeneous merges, from {loaded.path.name} "
                f"(`homogeneous.groups`; world recipe: {source}). The paper's Table 4 lists Hugging Face "
                "checkpoints of Qwen3 4B and 8B instead.")
    return PaperTable(["Base Model", "Domain", "Checkpoint", "Trained on"], rows, footnote)


def build_table5(loaded, suites: dict) -> PaperTable | None:
    """`suites`: the facts layer's suites (repro.facts.suites.load_suites)."""
    if loaded.config.homogeneous is None:
        return None
    names = list(dict.fromkeys(s for e in loaded.config.homogeneous.experiments for s in e.suites))
    columns = [[t.paper_name or t.name for t in suites[name].tasks] for name in names]
    rows = [[cell or "" for cell in row] for row in zip_longest(*columns)]
    footnote = (f"Table 5: evaluation tasks of the homogeneous merges, grouped by domain, from "
                f"{loaded.config.evaluation.suites_file} (suites {', '.join(names)}).")
    return PaperTable([f"{name.replace('_', ' ').capitalize()} Tasks" for name in names], rows, footnote, grouped=False)
