"""A merge method's name is stated in one place: the method catalog (`repro/method_catalog.py`) and the
method's own module (the module its `implementation` names). Everything else reads the method's traits.

The check reads the Python string literals of repro/ and tools/ (docstrings and comments are prose and
may name methods): a literal equal to a method name, or holding a multi-word method name (`tsv_m`,
`task_arithmetic_sb`, ...) as one identifier among other text, is a second home for that name. Single-word
names (`ties`) are English words too, so inside longer text only a literal that is exactly the name counts.
configs/*.yaml, docs/ and tests/ may name methods freely.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from repro.method_catalog import BUILTIN_METHODS

ROOT = Path(__file__).resolve().parents[1]
CATALOG = Path("repro/method_catalog.py")
SCANNED = ("repro", "tools")
IDENTIFIER = re.compile(r"[A-Za-z0-9_]+")


def method_names() -> set[str]:
    return {facts.name for facts in BUILTIN_METHODS} | {facts.mergekit_name for facts in BUILTIN_METHODS}


def homes() -> dict[str, set[Path]]:
    """name -> the files allowed to state it: the catalog and the method's implementation module."""
    allowed: dict[str, set[Path]] = {}
    for facts in BUILTIN_METHODS:
        files = {CATALOG}
        if facts.implementation:
            module = facts.implementation.partition(":")[0]
            files.add(Path(*module.split(".")).with_suffix(".py"))
        for name in (facts.name, facts.mergekit_name):
            allowed.setdefault(name, set()).update(files)
    return allowed


def _docstring_nodes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                found.add(id(first.value))
    return found


def names_in_source(source: str, names: set[str]) -> list[tuple[int, str, str]]:
    """(line, name, literal) for every string literal of `source` (f-string pieces included, docstrings
    not) that states a method name."""
    tree = ast.parse(source)
    docstrings = _docstring_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in docstrings:
            continue
        text = node.value
        hits = {text.strip()} & names
        hits |= {token for token in IDENTIFIER.findall(text) if token in names and "_" in token}
        found += [(node.lineno, name, text) for name in sorted(hits)]
    return found


def test_the_scanner_finds_names_in_code_and_ignores_prose():
    names = {"ties", "tsv_m", "iso_c", "task_arithmetic_sb"}
    source = '''
"""Module docstring naming ties and tsv_m: prose."""
CHECK = ("tsv_m", "iso_c")  # a tuple of names
def pick(method, kind):
    """Docstring: ties."""
    if method == "ties":  # a comparison
        return f"{kind}:task_arithmetic_sb"
    return "the base ties the embeddings"  # an English word
'''
    found = {(line, name) for line, name, _ in names_in_source(source, names)}
    assert found == {(3, "tsv_m"), (3, "iso_c"), (6, "ties"), (7, "task_arithmetic_sb")}


def test_no_method_name_outside_the_catalog_and_its_own_module():
    names, allowed = method_names(), homes()
    assert {"task_arithmetic", "ties", "model_stock", "tsv_m", "iso_c"} <= names
    problems = []
    scanned = 0
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT)
            scanned += 1
            for line, name, text in names_in_source(path.read_text(encoding="utf-8"), names):
                if relative not in allowed[name]:
                    problems.append(f"{relative}:{line}: method name {name!r} in {text[:60]!r}")
    assert scanned > 50
    assert not problems, (
        "method names outside their home (read the method's traits from repro.method_catalog instead):\n"
        + "\n".join(problems)
    )
