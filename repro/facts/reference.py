"""The published numbers as data (paper_artifacts/reference/): the only reader of those files.

- `tables.csv`: Tables 1-3 cell by cell, exactly as printed (table, model, method, reference column name,
  reference accuracy, n, combinations in the column header, percentage, delta). Values stay text so that
  "66" or "+0.01" are kept as printed; `ReferenceCell` offers them as numbers too.
- `text_claims.yaml`: the numbers the text of sections 3-4 quotes, each with its sentence and the checks
  `repro verify --published` runs against the tables.
- `names.yaml`: the paper's row/method names -> this kit's base names and merge-method registry names.

Every problem in a file is collected and raised as one ReferenceError listing all of them (file, row, field).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from repro.errors import ReproError
from repro.facts.paths import PAPER_ARTIFACTS_DIR, REPO_ROOT, repo_path

DEFAULT_REFERENCE_DIR = repo_path(PAPER_ARTIFACTS_DIR) / "reference"
TABLES_FILE, CLAIMS_FILE, NAMES_FILE = "tables.csv", "text_claims.yaml", "names.yaml"
COLUMNS = ("table", "model", "method", "reference", "reference_accuracy", "n", "combinations", "percentage", "delta")
AVERAGE = "Average"
CHECK_KINDS = ("cell", "all", "max", "range", "about", "monotonic", "header", "unchecked")
FIELDS = ("percentage", "delta", "reference_accuracy")
OPS = ("==", "<", "<=", ">", ">=")


class ReferenceError(ReproError):
    """A malformed reference file under paper_artifacts/reference/."""


@dataclass(frozen=True)
class ReferenceCell:
    table: str  # table1 | table2 | table3
    model: str  # paper row name (LLAMA-3B, ..., Average)
    method: str  # paper method name (TA, Model Stock, ...)
    reference: str  # the reference column's header: "Base" or "Best FT"
    reference_accuracy: str  # as printed, e.g. "50.3"
    n: int
    combinations: int  # k of the column header "n=m (k)"
    percentage: str  # as printed, e.g. "66"
    delta: str  # as printed, e.g. "+0.39"

    def value(self, name: str) -> float:
        return float(getattr(self, name))

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.table, self.model, self.method, self.n)


@dataclass(frozen=True)
class TextClaim:
    id: str
    section: str
    sentence: str
    checks: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class ReferenceNames:
    models: dict[str, str]  # paper name -> kit base name
    methods: dict[str, str]  # paper name -> merge registry name

    def model_for_base(self, base: str) -> str:
        return next((paper for paper, kit in self.models.items() if kit == base), base)

    def method_for(self, registry_name: str, label: str | None = None) -> str | None:
        paper = next((p for p, kit in self.methods.items() if kit == registry_name), None)
        return paper if paper is not None else label


def _fail(problems: list[str], path: Path) -> None:
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise ReferenceError(
            f"{len(problems)} problem(s); fix the file (see paper_artifacts/reference/README.md):\n  "
            + "\n  ".join(shown),
            path=str(path),
        )


def load_reference_cells(path: str | Path) -> list[ReferenceCell]:
    """Read tables.csv; every malformed row/field is reported (all at once)."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceError("reference table file not found; pass --reference DIR holding tables.csv",
                             path=str(path))
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ReferenceError(f"missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}",
                                 path=str(path))
        rows = list(reader)
    cells, problems, seen = [], [], set()
    for line, row in enumerate(rows, start=2):
        bad = []
        for name in ("percentage", "delta", "reference_accuracy"):
            try:
                float(row[name])
            except (TypeError, ValueError):
                bad.append(f"line {line}: {name}={row[name]!r} is not a number")
        for name in ("n", "combinations"):
            if not str(row[name] or "").isdigit():
                bad.append(f"line {line}: {name}={row[name]!r} is not a whole number")
        for name in ("table", "model", "method", "reference"):
            if not (row[name] or "").strip():
                bad.append(f"line {line}: {name} is empty")
        if bad:
            problems += bad
            continue
        cell = ReferenceCell(row["table"], row["model"], row["method"], row["reference"], row["reference_accuracy"],
                             int(row["n"]), int(row["combinations"]), row["percentage"], row["delta"])
        if cell.key in seen:
            problems.append(f"line {line}: duplicate cell {cell.table} {cell.model} {cell.method} n={cell.n}")
        seen.add(cell.key)
        cells.append(cell)
    _fail(problems, path)
    return cells


def _check_problems(claim_id: str, i: int, check: dict) -> list[str]:
    where = f"claim {claim_id} check {i}"
    kind = check.get("kind")
    if kind not in CHECK_KINDS:
        return [f"{where}: kind {kind!r} is not one of {', '.join(CHECK_KINDS)}"]
    need = {
        "cell": ("table", "model", "method", "n", "field", "value"),
        "all": ("table", "model", "method", "n_min", "field", "op", "value"),
        "max": ("table", "method", "field", "value"),
        "range": ("table", "model", "method", "n_min", "field", "low", "high"),
        "about": ("table", "model", "method", "n_min", "field", "value", "tol"),
        "monotonic": ("table", "model", "method", "n_min", "field", "direction"),
        "header": ("n", "combinations"),
        "unchecked": ("reason",),
    }[kind]
    problems = [f"{where}: missing `{key}`" for key in need if key not in check]
    if "field" in check and check["field"] not in FIELDS:
        problems.append(f"{where}: field {check['field']!r} is not one of {', '.join(FIELDS)}")
    if kind == "all" and check.get("op") not in OPS:
        problems.append(f"{where}: op {check.get('op')!r} is not one of {', '.join(OPS)}")
    if kind == "monotonic" and check.get("direction") not in ("increasing", "decreasing"):
        problems.append(f"{where}: direction must be increasing or decreasing")
    return problems


def load_text_claims(path: str | Path) -> list[TextClaim]:
    path = Path(path)
    data = _read_yaml(path)
    problems, claims = [], []
    raw = data.get("claims")
    if not isinstance(raw, list):
        raise ReferenceError("expected a `claims:` list", path=str(path))
    for j, entry in enumerate(raw):
        if not isinstance(entry, dict) or not all(k in entry for k in ("id", "sentence", "checks")):
            problems.append(f"claims[{j}]: needs id, sentence and checks")
            continue
        checks = entry["checks"] if isinstance(entry["checks"], list) else []
        for i, check in enumerate(checks):
            problems += _check_problems(entry["id"], i, check if isinstance(check, dict) else {})
        claims.append(TextClaim(str(entry["id"]), str(entry.get("section", "")), str(entry["sentence"]), checks))
    _fail(problems, path)
    return claims


def load_names(path: str | Path) -> ReferenceNames:
    path = Path(path)
    if not path.is_file():
        return ReferenceNames({}, {})
    data = _read_yaml(path)
    models, methods = data.get("models") or {}, data.get("methods") or {}
    if not isinstance(models, dict) or not isinstance(methods, dict):
        raise ReferenceError("`models` and `methods` must map paper names to kit names", path=str(path))
    return ReferenceNames({str(k): str(v) for k, v in models.items()}, {str(k): str(v) for k, v in methods.items()})


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ReferenceError("file not found; pass --reference DIR holding the reference files", path=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ReferenceError(f"not valid YAML: {exc}", path=str(path)) from exc
    if not isinstance(data, dict):
        raise ReferenceError("expected a mapping at the top level", path=str(path))
    return data


@dataclass(frozen=True)
class Reference:
    cells: list[ReferenceCell]
    claims: list[TextClaim]
    names: ReferenceNames
    root: Path


def display_path(path: Path) -> str:
    """A reference folder as shown in reports: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def load_reference(directory: str | Path | None = None) -> Reference:
    """tables.csv + text_claims.yaml (optional) + names.yaml (optional) of a reference folder."""
    root = Path(directory) if directory is not None else DEFAULT_REFERENCE_DIR
    cells = load_reference_cells(root / TABLES_FILE)
    claims = load_text_claims(root / CLAIMS_FILE) if (root / CLAIMS_FILE).is_file() else []
    return Reference(cells, claims, load_names(root / NAMES_FILE), root)
