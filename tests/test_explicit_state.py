"""No module-level state changes results or resources behind the caller's back: caches are objects the
caller owns and passes (SvdCache to the merge engine, EvaluationSession to the evaluation)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_no_context_variables_or_memoizing_decorators_in_the_library():
    offenders = []
    for path in (ROOT / "repro").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Name, ast.Attribute)) and (getattr(node, "id", None) or node.attr) in (
                    "ContextVar", "lru_cache"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                for decorator in node.decorator_list:
                    text = ast.unparse(decorator)
                    if text in ("cache", "functools.cache") or "lru_cache" in text:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: @{text}")
    assert offenders == []


def test_tsv_m_keys_its_cache_by_the_content_keys_the_engine_gives(tiny_llama_world, tmp_path):
    from repro.merge import SvdCache, merge_checkpoints

    base, ckpts = tiny_llama_world.base, tiny_llama_world.checkpoints
    copy = tmp_path / "copy-of-1"
    shutil.copytree(ckpts[1], copy)  # another path, the same content
    cache = SvdCache()
    first = merge_checkpoints(base, [ckpts[0], ckpts[1]], "tsv_m", out_dir=None, svd_cache=cache)
    again = merge_checkpoints(base, [ckpts[0], copy], "tsv_m", out_dir=None, svd_cache=cache)
    assert first.svd_cache_stats["computed"] > 0 and again.svd_cache_stats["computed"] == 0
    assert all(torch.equal(first.state_dict[k], again.state_dict[k]) for k in first.state_dict)
    uncached = merge_checkpoints(base, [ckpts[0], copy], "tsv_m", out_dir=None)
    assert all(torch.equal(first.state_dict[k], uncached.state_dict[k]) for k in first.state_dict)


def test_tsv_m_without_content_keys_never_reads_a_cache_by_path(tiny_llama_world):
    from mergekit.common import ModelReference
    from mergekit.merge_methods.base import TensorGroup

    from repro.merge import SvdCache
    from repro.merge.methods.tsv_m import tsv_m_merge_method

    cache = SvdCache()
    ids = [ModelReference.model_validate({"model": {"path": str(p)}})
           for p in (tiny_llama_world.base, *tiny_llama_world.checkpoints[:2])]
    tensors = [torch.randn(8, 8) for _ in ids]
    group = TensorGroup.from_tensors(tensors, ids=ids, base_index=0, name="model.layers.0.mlp.up_proj.weight")
    bound = tsv_m_merge_method.with_svd_cache(cache)
    (merged,) = bound((group,), parameters={}, dtype=torch.float32)
    (stock,) = tsv_m_merge_method((group,), parameters={}, dtype=torch.float32)
    assert torch.equal(merged, stock) and cache.stats.computed == 0 and cache.stats.hits == 0
    assert tsv_m_merge_method.svd_cache is None  # the registered object stays stateless


def test_task_managers_live_in_the_callers_session():
    from repro.evaluate.prepared import EvaluationSession
    from repro.evaluate.task_loading import task_manager_for

    tasks = str(ROOT / "tasks" / "smoke")
    one, two = EvaluationSession(), EvaluationSession()
    names = sorted(task_manager_for([], [tasks], one).all_tasks)[:1]
    manager = task_manager_for(names, [tasks], one)
    assert task_manager_for(names, [tasks], one) is manager
    assert task_manager_for(names, [tasks], two) is not manager


# -- no state changed by importing, no module-level registries ----------------------------------------------

_MUTATING_METHODS = frozenset({"append", "extend", "update", "add", "setdefault", "pop", "popitem", "clear",
                               "remove", "discard", "insert", "register", "__setitem__"})


def _module_containers(tree: ast.Module) -> set[str]:
    """Module-level names bound to a mutable container (a dict/list/set display, comprehension or call)."""
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        value = getattr(node, "value", None)
        mutable = isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)) or (
            isinstance(value, ast.Call) and ast.unparse(value.func) in ("dict", "list", "set", "defaultdict",
                                                                     "collections.defaultdict", "OrderedDict"))
        names |= {t.id for t in targets if isinstance(t, ast.Name) and mutable}
    return names


def test_no_module_level_registry_is_filled_or_changed_at_run_time():
    offenders = []
    for path in (ROOT / "repro").rglob("*.py"):
        tree = ast.parse(path.read_text())
        containers = _module_containers(tree)
        where = f"{path.relative_to(ROOT)}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                offenders.append(f"{where}:{node.lineno}: global {', '.join(node.names)}")
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                if isinstance(target, ast.Subscript) and ast.unparse(target.value) in containers:
                    offenders.append(f"{where}:{node.lineno}: {ast.unparse(target)} = ...")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and ast.unparse(node.func.value) in containers and node.func.attr in _MUTATING_METHODS):
                offenders.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
        for node in tree.body:  # module level: no patching of other modules' attributes
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            offenders += [f"{where}:{node.lineno}: {ast.unparse(t)} = ..." for t in targets
                          if isinstance(t, ast.Attribute)]
    assert offenders == []


def test_the_checker_sees_a_registry_filled_from_a_function(tmp_path):
    tree = ast.parse("REGISTRY = {}\n\ndef register(name, obj):\n    REGISTRY[name] = obj\n")
    assert _module_containers(tree) == {"REGISTRY"}


def test_no_module_registers_anything_with_a_decorator_or_a_call_at_import():
    """Registration in another library's registry happens when a caller asks (repro lm-eval), not on import."""
    offenders = []
    for path in (ROOT / "repro").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno}: @{ast.unparse(d)}" for d in node.decorator_list
                              if "register" in ast.unparse(d)]
        for node in tree.body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and "register" in ast.unparse(
                    node.value.func):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node.value)}")
    assert offenders == []


def test_importing_the_library_registers_nothing_in_lm_eval():
    """Every repro module that the evaluation reaches, imported in a fresh process, leaves lm-eval's model
    registry as it was; `repro lm-eval` adds `hf-shared` itself (and a second call changes nothing)."""
    import subprocess
    import sys

    script = (
        "import lm_eval.models\n"
        "from lm_eval.api.registry import model_registry\n"
        "before = sorted(model_registry.keys())\n"
        "import repro.evaluate, repro.evaluate.shared_context, repro.evaluate.harness, repro.worlds.smollm2\n"
        "import repro.runner.job_executor, repro.cli.lm_eval_cli, repro.cli.evaluate_commands\n"
        "assert sorted(model_registry.keys()) == before, set(model_registry.keys()) ^ set(before)\n"
        "assert 'hf-shared' not in model_registry\n"
        "from repro.evaluate.lm_eval_registration import register_lm_eval_model\n"
        "register_lm_eval_model(); register_lm_eval_model()\n"
        "assert sorted(model_registry.keys()) == sorted([*before, 'hf-shared'])\n"
        "from repro.evaluate.shared_context import SharedContextHFLM\n"
        "assert model_registry.get('hf-shared') is SharedContextHFLM\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_reused_requests_patch_lm_eval_tasks_only_while_an_evaluation_runs(tiny_llama_world):
    """A session's second evaluation reuses the built requests through a stand-in for each task's
    `build_all_requests`; outside the evaluation the tasks are lm-eval's own objects, unchanged."""
    from repro.evaluate import EvaluationSession, TaskSpec, evaluate_model

    session = EvaluationSession()
    suite = [TaskSpec(name="smoke_arithmetic")]
    for model in (tiny_llama_world.base, tiny_llama_world.checkpoints[0]):
        evaluate_model(model, suite, include_path=ROOT / "tasks" / "smoke", dtype="float32", limit=4,
                       session=session)
    assert session.reused_tasks == 1
    (prepared,) = session._tasks.values()
    tasks = list(prepared.loaded["tasks"].values())
    assert tasks and all("build_all_requests" not in vars(task) for task in tasks)


def test_no_function_patches_an_attribute_of_an_imported_module():
    """Library objects are configured through their arguments, not by assigning to their modules' attributes.
    The one exception: `repro lm-eval` hands its arguments to lm-eval's own parser through sys.argv, restored
    in a `finally`."""
    allowed = {("repro/cli/lm_eval_cli.py", "sys.argv")}
    offenders = []
    for path in (ROOT / "repro").rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported |= {alias.asname or alias.name for alias in node.names}
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AugAssign) else []
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "setattr" and node.args:
                targets = [ast.Attribute(value=node.args[0], attr="?")]
            for target in targets:
                base = target
                while isinstance(base, ast.Attribute):
                    base = base.value
                where = (str(path.relative_to(ROOT)), ast.unparse(target))
                if isinstance(target, ast.Attribute) and isinstance(base, ast.Name) and base.id in imported \
                        and where not in allowed:
                    offenders.append(f"{where[0]}:{node.lineno}: {where[1]}")
    assert offenders == []
# -- torch's thread count: changed only for a scope, put back after it ------------------------------------
# Where the library may call torch.set_num_threads: the scope itself, and two scopes that restore in a
# `finally` (the merge pass switches per tensor and puts the caller's count back; the world trainer's
# deterministic block). Everything else asks for `repro.torch_threads.torch_threads(n)`.
THREAD_SETTERS = {"repro/torch_threads.py", "repro/merge/streaming.py", "repro/worlds/trained.py"}


def test_only_scopes_that_restore_set_torchs_thread_count():
    offenders = []
    for path in (ROOT / "repro").rglob("*.py"):
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "set_num_threads" and where not in THREAD_SETTERS:
                offenders.append(f"{where}:{node.lineno}")
    assert offenders == []


def test_torch_threads_puts_the_count_back_also_after_an_error():
    from repro.torch_threads import torch_threads

    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with torch_threads(other) as inside:
        assert torch.get_num_threads() == other == inside
    assert torch.get_num_threads() == before
    try:
        with torch_threads(other):
            raise KeyError("a failing job")
    except KeyError:
        pass
    assert torch.get_num_threads() == before
    with torch_threads(None) as inside:  # no setting: nothing changes
        assert inside == before == torch.get_num_threads()


def test_a_job_runs_with_the_configured_threads_and_leaves_the_process_as_it_was():
    """JobExecutor.run sets `evaluation.threads` for the job only (not for the process from its creation on)."""
    from repro.plan import Job, JobKind
    from repro.runner.job_executor import JobExecutor

    before = torch.get_num_threads()
    configured = 1 if before != 1 else 2
    seen = []
    executor = object.__new__(JobExecutor)  # only what `run` reads: the thread setting and the job's work
    executor.threads = configured

    def work(job):
        seen.append(torch.get_num_threads())
        if job.id == "bad":
            raise RuntimeError("a failing job")
        return job.id

    executor._run = work
    assert executor.run(Job("ok", JobKind.BASE, "m", 0)) == "ok"
    assert torch.get_num_threads() == before
    try:
        executor.run(Job("bad", JobKind.BASE, "m", 0))
    except RuntimeError:
        pass
    assert seen == [configured, configured] and torch.get_num_threads() == before
