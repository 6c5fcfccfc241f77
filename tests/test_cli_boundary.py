"""argv and exit codes live in repro/cli only: library code raises typed errors and returns summaries."""

from __future__ import annotations

import ast
from pathlib import Path

from smoke_project import smoke_project, write_config

ROOT = Path(__file__).resolve().parents[1]


def _touches_process_boundary(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "sys" \
                and node.attr in ("argv", "exit"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: sys.{node.attr}")
        if isinstance(node, ast.Name) and node.id in ("SystemExit", "exit", "quit"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.id}")
        if isinstance(node, ast.Attribute) and node.attr == "_exit":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: os._exit")
        if isinstance(node, ast.Constant) and node.value == "REPRO_WORKER_INDEX":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: worker steering through the environment")
    return found


def test_no_library_module_reads_argv_or_exits_the_process():
    library = [p for p in (ROOT / "repro").rglob("*.py")
               if "cli" not in p.relative_to(ROOT / "repro").parts and p.name != "__main__.py"]
    assert len(library) > 50
    offenders = [line for path in library for line in _touches_process_boundary(path)]
    assert offenders == []


def test_parallel_workers_run_the_callers_plan_and_return_a_summary(tmp_path):
    from repro.facts.config import load_config
    from repro.plan import JobKind, build_plan
    from repro.runner.local_runner import RunSummary, run_parallel

    project = tmp_path / "project"
    data = smoke_project(project)
    data["world"]["checkpoints_per_base"] = 2
    data["merge"].update(sizes=[2], subsets_per_size=1)
    data["evaluation"]["limit"] = 4
    data["report"]["appendix_configs"] = []
    path = write_config(project, data)
    loaded = load_config(path)
    plan = build_plan(loaded)
    # the caller's plan is what the workers run: here only the two base evaluations
    import dataclasses

    plan = dataclasses.replace(plan, jobs=tuple(j for j in plan.jobs if j.kind == JobKind.BASE))
    from repro.runner.model_sources import ModelSources

    ModelSources(loaded, project / "runs").prepare(loaded.base_names)
    summary = run_parallel(path, project / "runs/smoke", plan, 2, retry_failed=False, kinds=None, progress=False)
    assert isinstance(summary, RunSummary) and summary.ok
    assert sorted(summary.done) == sorted(j.id for j in plan.jobs) and len(summary.done) == 2
