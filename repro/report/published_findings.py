"""What a check of the published tables reports (repro.report.published_checks, published_text)."""

from __future__ import annotations

from dataclasses import dataclass, field

from repro.facts.reference import ReferenceCell

EPS = 1e-9  # slack of a comparison of printed numbers (float noise, never a rounding unit)


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # "inconsistency" | "note"
    message: str
    cells: tuple[str, ...] = field(default_factory=tuple)


def describe(cell: ReferenceCell) -> str:
    return (f"{cell.table} {cell.model} / {cell.method} / n={cell.n}: {cell.percentage} / {cell.delta} "
            f"({cell.reference} {cell.reference_accuracy})")
