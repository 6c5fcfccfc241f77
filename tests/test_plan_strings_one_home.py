"""Job kinds and result-record keys have one home each: `repro.job_kinds` (JobKind) and
`repro.results.record` (ResultRecord). Everywhere else in repro/ and tools/ they are read through those
types, never spelled as strings, so renaming or adding one is a change in one module that the type checker
and these tests follow.

The words are generic ("base", "merge", "config", "job" ...), so a literal is only an offence where it is
used *as* a kind or a record key, decided from the syntax around it (ast), not from the word alone:

Job kinds (the values of JobKind), outside repro/job_kinds.py:
  - a literal compared with (==, !=, in, not in) an expression that names `kind`, `kinds` or `experiment`
    (a name or attribute of that name, e.g. `job.kind == "merge"`, `job.kind in ("base", "single")`);
  - a literal in a `match` case whose subject names `kind`;
  - a literal passed as `kind=` / `kinds=`, or stored under the key "kind" of a dict display.
  `suite.kind == "local"` or `reference == "base"` pass: the one is no job-kind value, the other names no kind.

The main grid, outside repro/plan.py (where Job.part_of reads the stored field): no `.experiment is None`
/ `is not None` and no comparison of `.experiment` with anything (Plan.main_grid, Job.in_main_grid and
Job.part_of say what it means).

Result-record keys (the fields ResultRecord writes), outside repro/results/record.py:
  - a literal used as a subscript or as the key of .get/.pop/.setdefault on an expression that reads a
    record: one that names `record`/`records`/`result`/`results` or calls read_result/iter_results
    (`record["average"]`, `store.read_result(i)["geometry"]`);
  - a dict display with the key "job" and two or more other record keys (a record built as a dict instead
    of a ResultRecord).
  A config section such as `raw["merge"]` passes (its expression reads no record), and so does the content
  of a job id (`repro.job_ids.job_content`: models, evaluation, merge, but no "job").
"""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

from repro.plan import JobKind
from repro.results import ResultRecord

ROOT = Path(__file__).resolve().parents[1]
KINDS = {kind.value for kind in JobKind}
RECORD_KEYS = {f.name for f in fields(ResultRecord)} - {"extra"}
KIND_NAMES = {"kind", "kinds", "experiment"}
RECORD_EXPR = re.compile(r"\b(records?|results?)\b|read_result|iter_results")


def _sources(exclude: str) -> list[Path]:
    paths = [*(ROOT / "repro").rglob("*.py"), *(ROOT / "tools").rglob("*.py")]
    return [p for p in paths if str(p.relative_to(ROOT)) != exclude]


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _strings(node: ast.AST) -> list[ast.Constant]:
    """String literals of an expression: itself, or the items of a tuple/list/set display."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [n for n in items if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def kind_offences(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, operand in enumerate(operands):
                others = [o for j, o in enumerate(operands) if j != i]
                if any(_names(o) & KIND_NAMES for o in others):
                    found += [(c.lineno, c.value) for c in _strings(operand) if c.value in KINDS]
        elif isinstance(node, ast.Match) and _names(node.subject) & KIND_NAMES:
            for case in node.cases:
                found += [(p.lineno, p.value.value) for p in ast.walk(case.pattern)
                          if isinstance(p, ast.MatchValue) and isinstance(p.value, ast.Constant)
                          and p.value.value in KINDS]
        elif isinstance(node, ast.keyword) and node.arg in ("kind", "kinds"):
            found += [(c.lineno, c.value) for c in _strings(node.value) if c.value in KINDS]
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "kind":
                    found += [(c.lineno, c.value) for c in _strings(value) if c.value in KINDS]
    return found


def grid_filter_offences(tree: ast.AST) -> list[tuple[int, str]]:
    return [(node.lineno, ast.unparse(node)) for node in ast.walk(tree) if isinstance(node, ast.Compare)
            and any(isinstance(o, ast.Attribute) and o.attr == "experiment" for o in [node.left, *node.comparators])]


def record_key_offences(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and RECORD_EXPR.search(ast.unparse(node.value)):
            found += [(c.lineno, c.value) for c in _strings(node.slice) if c.value in RECORD_KEYS]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("get", "pop", "setdefault") and node.args
              and RECORD_EXPR.search(ast.unparse(node.func.value))):
            found += [(c.lineno, c.value) for c in _strings(node.args[0]) if c.value in RECORD_KEYS]
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and k.value in RECORD_KEYS]
            if "job" in keys and len(keys) >= 3:
                found.append((node.lineno, "a record as a dict: " + ", ".join(keys)))
    return found


def _scan(check, exclude: str) -> list[str]:
    out = []
    for path in _sources(exclude):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        out += [f"{path.relative_to(ROOT)}:{line}: {text!r}" for line, text in check(tree)]
    return out


def test_job_kinds_are_spelled_only_in_the_plan():
    assert _scan(kind_offences, "repro/job_kinds.py") == []


def test_the_main_grid_filter_is_written_only_in_the_plan():
    assert _scan(grid_filter_offences, "repro/plan.py") == []


def test_result_record_keys_are_spelled_only_in_the_record_module():
    assert _scan(record_key_offences, "repro/results/record.py") == []


def test_the_rules_catch_what_they_are_for():
    """Each rule flags the old spellings and passes their look-alikes that are no kind or record key."""
    flagged = [
        'job.kind == "merge"', 'j.kind in ("base", "single")', 'x = {"kind": "geometry"}',
        'run_worker(kinds={"geometry"})', 'match job.kind:\n    case "single":\n        pass',
        'job.experiment == "homogeneous"',
    ]
    passed = ['suite.kind == "local"', 'reference == "base"', 'entry["base"] = v', 'role = {"role": "base"}']
    assert all(kind_offences(ast.parse(code)) for code in flagged)
    assert not any(kind_offences(ast.parse(code)) for code in passed)
    assert grid_filter_offences(ast.parse("[j for j in jobs if j.experiment is None]"))
    records = ['record["average"]', 'store.read_result(i)["geometry"]', 'r = records[i].get("suite_averages")',
               'x = {"job": 1, "config": 2, "scores": 3}']
    assert all(record_key_offences(ast.parse(code)) for code in records)
    assert not any(record_key_offences(ast.parse(code)) for code in ['raw["merge"]["sizes"] = 2', 'cfg.get("config")'])
