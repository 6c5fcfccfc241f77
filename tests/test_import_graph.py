"""The shape of the import graph, read statically (ast) from every import of repro/, function-level ones
included (`if TYPE_CHECKING:` imports excluded: they never run): no import circles between modules, no
module over 400 lines, and the report layer reaches neither torch nor the merge and evaluation code."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
# Known exceptions, each to be removed when its module is split; a listed one that no longer occurs fails.
KNOWN_CYCLES: set[frozenset[str]] = set()
KNOWN_LONG: set[str] = set()
HEAVY = ("torch", "transformers", "mergekit", "lm_eval", "vllm", "numba")
REPORT_FORBIDDEN = ("repro.merge", "repro.evaluate")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / "repro").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _runtime_imports(tree: ast.AST):
    """Import nodes outside `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _known(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_in(source: str, module: str, is_package: bool = False) -> tuple[set[str], set[str]]:
    """(repro modules, top-level outside packages) that the code `source` of `module` imports."""
    internal, external = set(), set()
    for node in _runtime_imports(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] == "repro":
                target = _known(name)
                if target and target != module:
                    internal.add(target)
            else:
                external.add(name.split(".")[0])
    return internal, external


def imports_of(module: str) -> tuple[set[str], set[str]]:
    path = MODULES[module]
    return imports_in(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")


GRAPH = {module: imports_of(module) for module in MODULES}


def _cycles() -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v][0]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_the_graph_reader_sees_function_level_and_relative_imports():
    # the reader must see every import that runs, or the tests below would prove nothing
    source = (
        "import torch\n"
        "from repro.facts.config import load_config\n"
        "from . import table1\n"
        "from .artifacts import Artifact\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from repro.plan import Plan\n"
        "def render():\n"
        "    from repro.facts.suites import load_suites\n"
        "    import repro.results.store\n"
    )
    internal, external = imports_in(source, "repro.report.render_all")
    assert internal == {"repro.facts.config", "repro.report.table1", "repro.report.artifacts", "repro.report",
                        "repro.facts.suites", "repro.results.store"}
    assert external == {"torch", "typing"}
    assert imports_in("from .. import errors\n", "repro.facts", is_package=True)[0] == {"repro", "repro.errors"}


def test_no_import_circles():
    cycles = _cycles()
    assert [sorted(c) for c in cycles if c not in KNOWN_CYCLES] == []
    assert [sorted(c) for c in KNOWN_CYCLES if c not in cycles] == []  # fixed: remove it from KNOWN_CYCLES


def test_no_module_over_400_lines():
    lengths = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in lengths.items() if n > MAX_LINES and m not in KNOWN_LONG} == {}
    assert [m for m in KNOWN_LONG if lengths.get(m, 0) <= MAX_LINES] == []  # fixed: remove it from KNOWN_LONG


def _reachable(start: str) -> dict[str, str]:
    """Every repro module `start` imports, directly or not -> the module that imports it."""
    seen = {start: ""}
    todo = [start]
    while todo:
        module = todo.pop()
        for target in GRAPH[module][0]:
            if target not in seen:
                seen[target] = module
                todo.append(target)
    return seen


def test_the_report_layer_reaches_no_torch_merge_or_evaluation_code():
    offenders = []
    for module in (m for m in MODULES if m.startswith("repro.report")):
        for reached, via in _reachable(module).items():
            if reached.startswith(REPORT_FORBIDDEN):
                offenders.append(f"{module} -> ... {via} -> {reached}")
            heavy = GRAPH[reached][1] & set(HEAVY)
            if heavy:
                offenders.append(f"{module} -> ... {reached} imports {', '.join(sorted(heavy))}")
    assert offenders == []


# --- Function-level imports: only where they defer something heavy, each with a comment ---------------------
# Libraries that are slow to import (python -X importtime, cumulative, Python 3.11, 2-core machine, Dec 2026):
# torch 1.7 s, transformers 0.9 s, datasets 0.9 s, mergekit's modules 1.6 s (they import torch), numba 0.36 s,
# lm_eval's modules 0.3 s, matplotlib 0.28 s, huggingface_hub's HfApi 0.2 s, numpy 0.08-0.14 s, submitit 0.06 s;
# vllm is GPU-only. `safetensors.torch` imports torch. Not heavy: yaml, pydantic, tqdm, tokenizers, safetensors.
DEFERRABLE = ("torch", "transformers", "mergekit", "lm_eval", "vllm", "numba", "matplotlib", "datasets",
              "huggingface_hub", "submitit", "numpy")
# Modules another change is still editing: their function-level imports are not checked yet. Empty this set
# (and fix what the test then finds) once that change is merged.
PENDING: set[str] = set()
# Copied byte for byte into every task folder, whose content fingerprint keys the prepared tasks: its text is
# data, so its deferred `datasets` import is checked but carries no comment (the docstring says what it is).
VERBATIM = {"repro/evaluate/local_dataset.py"}
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _deferrable(name: str) -> str | None:
    if name == "safetensors.torch" or name.startswith("safetensors.torch."):
        return "torch"
    top = name.split(".")[0]
    return top if top in DEFERRABLE else None


def _imports_with_place(tree: ast.AST):
    """(import node, inside a function, inside a `try` that catches ImportError) for every runtime import."""
    stack = [(tree, False, False)]
    while stack:
        node, in_function, optional = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend((child, in_function, optional) for child in node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function, optional
            continue
        in_function = in_function or isinstance(node, _FUNCTIONS)
        if isinstance(node, ast.Try):
            catches = any(h.type is not None and ("ImportError" in ast.unparse(h.type)
                                                  or "ModuleNotFoundError" in ast.unparse(h.type))
                          for h in node.handlers)
            stack.extend((child, in_function, optional or catches) for child in node.body)
            stack.extend((child, in_function, optional) for child in node.handlers + node.orelse + node.finalbody)
            continue
        stack.extend((child, in_function, optional) for child in ast.iter_child_nodes(node))


def _targets(node, module: str, is_package: bool) -> tuple[set[str], set[str]]:
    """(repro modules that run, parent packages included; outside dotted names) of one import statement."""
    internal, external = imports_in(ast.unparse(node), module, is_package)
    external = {name for name in _dotted_names(node, module, is_package) if name.split(".")[0] != "repro"}
    with_parents = set()
    for target in internal:
        while target:
            if target in MODULES and target != module:
                with_parents.add(target)
            target = target.rpartition(".")[0]
    return with_parents, external


def _dotted_names(node, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        return [module]  # relative imports stay inside repro
    return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]


def _module_level(module: str) -> tuple[set[str], set[str]]:
    path = MODULES[module]
    internal, external = set(), set()
    for node, in_function, _ in _imports_with_place(ast.parse(path.read_text(encoding="utf-8"))):
        if not in_function:
            i, e = _targets(node, module, path.name == "__init__.py")
            internal |= i
            external |= e
    return internal, external


TOP_LEVEL = {module: _module_level(module) for module in MODULES}


def _closure(starts) -> tuple[set[str], set[str]]:
    """(repro modules, outside top-level packages) that importing `starts` loads, module-level imports only."""
    seen, todo, external = set(starts), list(starts), set()
    while todo:
        module = todo.pop()
        external |= {name.split(".")[0] for name in TOP_LEVEL[module][1]}
        external |= {lib for lib in map(_deferrable, TOP_LEVEL[module][1]) if lib}
        for target in TOP_LEVEL[module][0] - seen:
            seen.add(target)
            todo.append(target)
    return seen, external


def _heavy(modules: set[str], external: set[str]) -> set[str]:
    return {lib for name in external if (lib := _deferrable(name))} | _closure(modules)[1] & set(DEFERRABLE)


# What `repro --help` loads: the CLI package and every sub-command module it registers, module level only.
_COMMANDS = next(ast.literal_eval(node.value) for node in ast.parse(MODULES["repro.cli"].read_text()).body
                 if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "COMMAND_MODULES")
HELP_LOADS = _closure({"repro.cli", *_COMMANDS})


def _import_runs(tree: ast.AST) -> dict[int, int]:
    """line of each function-level import -> first line of the run of consecutive import statements holding it."""
    first = {}
    for function in (n for n in ast.walk(tree) if isinstance(n, _FUNCTIONS[:2])):
        for node in ast.walk(function):
            for field in ("body", "orelse", "finalbody"):
                block = getattr(node, field, None)
                run_start = None
                for statement in block if isinstance(block, list) else []:
                    if isinstance(statement, (ast.Import, ast.ImportFrom)):
                        run_start = run_start or statement.lineno
                        first[statement.lineno] = run_start
                    else:
                        run_start = None
    return first


def function_level_problems(module: str, source: str, is_package: bool = False,
                            need_comments: bool = True) -> list[str]:
    """Each function-level import of `source` (the code of `module`) that is not allowed, or has no comment.
    Allowed: an import that defers a heavy library (DEFERRABLE, or a repro module whose module-level imports
    reach one) the module does not load at module level anyway; in the CLI, a handler's import of library code
    that `repro --help` does not load; an optional import inside `try: ... except ImportError`. Each one
    carries a comment on its line or on the line above its run of consecutive imports."""
    tree = ast.parse(source)
    lines = source.splitlines()
    runs = _import_runs(tree)
    places = sorted(_imports_with_place(tree), key=lambda place: place[0].lineno)
    own_modules, own_external = set(), set()
    for node, in_function, _ in places:
        if not in_function:
            i, e = _targets(node, module, is_package)
            own_modules |= i
            own_external |= e
    own_heavy = _heavy(own_modules, own_external)
    problems = []
    for node, in_function, optional in places:
        if not in_function:
            continue
        where = f"{module}:{node.lineno} `{ast.unparse(node)}`"
        internal, external = _targets(node, module, is_package)
        defers = _heavy(internal, external) - own_heavy
        loads, loads_external = _closure(internal)
        help_lighter = module.startswith("repro.cli") and bool(
            (loads - HELP_LOADS[0]) | ({n.split(".")[0] for n in external} | loads_external) - HELP_LOADS[1])
        if not (optional or defers or help_lighter):
            problems.append(f"{where} defers nothing heavy: move it to the module's imports")
            continue
        above = lines[runs.get(node.lineno, node.lineno) - 2].strip() if node.lineno > 1 else ""
        if need_comments and "#" not in lines[node.lineno - 1] and not above.startswith("#"):
            problems.append(f"{where} needs a comment saying what it defers")
    return problems


def test_the_function_level_check_finds_light_and_uncommented_imports():
    source = (
        "import json\n"
        "def a():\n"
        "    # torch: deferred so that importing this module does not load it\n"
        "    import torch\n"
        "    from repro.merge.streaming import run_pass\n"
        "def b():\n"
        "    from repro.errors import ReproError\n"
        "def c():\n"
        "    from transformers import AutoConfig\n"
        "def d():\n"
        "    try:\n"
        "        import scipy.linalg  # optional\n"
        "    except ImportError:\n"
        "        pass\n"
    )
    problems = function_level_problems("repro.facts.paths", source)
    assert len(problems) == 2
    assert "ReproError" in problems[0] and "defers nothing heavy" in problems[0]
    assert "AutoConfig" in problems[1] and "needs a comment" in problems[1]
    # deferring torch gains nothing in a module that imports it at module level
    assert "defers nothing heavy" in function_level_problems(
        "repro.facts.paths", "import torch\ndef f():\n    import torch  # deferred\n")[0]


def test_function_level_imports_only_defer_heavy_libraries_and_say_so():
    problems = []
    for module, path in MODULES.items():
        relative = str(path.relative_to(ROOT))
        if relative not in PENDING:
            problems += function_level_problems(module, path.read_text(encoding="utf-8"), path.name == "__init__.py",
                                                need_comments=relative not in VERBATIM)
    assert problems == []
    assert [p for p in PENDING if not (ROOT / p).exists()] == []  # a pending file that is gone: drop it
