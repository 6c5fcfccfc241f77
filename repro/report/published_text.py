"""Numbers quoted in the text (paper_artifacts/reference/text_claims.yaml) against the transcribed tables.

Each check of a claim selects cells by table / model / method / n ("*" for model or method: every model row,
"Average" excluded) and compares the printed values. A failed hedged claim (`soft: true`: "generally",
"steadily") is a note; any other failed claim is an inconsistency. A check that selects no cell is an
inconsistency of the claims file itself (a typo in a name), never silently passed.
"""

from __future__ import annotations

import operator
from statistics import mean

from repro.facts.reference import AVERAGE, ReferenceCell, TextClaim
from repro.report.published_findings import EPS, Finding, describe

OPS = {"==": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _select(cells: list[ReferenceCell], check: dict) -> list[ReferenceCell]:
    def matches(cell: ReferenceCell) -> bool:
        if "table" in check and cell.table != check["table"]:
            return False
        model, method = str(check.get("model", "*")), str(check.get("method", "*"))
        if (cell.model == AVERAGE) if model == "*" else (cell.model != model):
            return False
        if method != "*" and cell.method != method:
            return False
        if "n" in check and not isinstance(check["n"], list) and cell.n != int(check["n"]):
            return False
        return int(check.get("n_min", 0)) <= cell.n <= int(check.get("n_max", 10**6))

    return sorted((c for c in cells if matches(c)), key=lambda c: (c.table, c.model, c.method, c.n))


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= EPS


def _failures(check: dict, cells: list[ReferenceCell]) -> tuple[list[ReferenceCell], str]:
    """(cells that contradict the check, what was expected); an empty list when the check holds."""
    kind, name = check["kind"], check.get("field")
    if kind == "cell":
        bad = [c for c in cells if not _close(c.value(name), float(check["value"]))]
        return bad, f"{name} = {check['value']}"
    if kind == "all":
        op = OPS[check["op"]]
        bad = [c for c in cells if not op(c.value(name), float(check["value"]))]
        return bad, f"{name} {check['op']} {check['value']} for every n >= {check['n_min']}"
    if kind == "range":
        bad = [c for c in cells if not float(check["low"]) - EPS <= c.value(name) <= float(check["high"]) + EPS]
        return bad, f"{check['low']} <= {name} <= {check['high']}"
    if kind == "max":
        top = max(c.value(name) for c in cells)
        return ([c for c in cells if _close(c.value(name), top)] if not _close(top, float(check["value"])) else [],
                f"largest {name} = {check['value']} (printed maximum {top:g})")
    if kind == "about":
        m = mean(c.value(name) for c in cells)
        ok = abs(m - float(check["value"])) <= float(check["tol"]) + EPS
        return ([] if ok else cells), f"mean {name} about {check['value']} (+/-{check['tol']}; printed mean {m:.3f})"
    if kind == "monotonic":
        sign = 1 if check["direction"] == "increasing" else -1
        bad = []
        rows: dict = {}
        for c in cells:
            rows.setdefault((c.table, c.model, c.method), []).append(c)
        for row in rows.values():
            row.sort(key=lambda c: c.n)
            bad += [b for a, b in zip(row, row[1:], strict=False) if sign * (b.value(name) - a.value(name)) < -EPS]
        return bad, f"{name} {check['direction']} with n"
    raise AssertionError(kind)


def _header_findings(claim: TextClaim, check: dict, cells: list[ReferenceCell]) -> list[Finding]:
    sizes = check["n"] if isinstance(check["n"], list) else [check["n"]]
    bad = [c for c in cells if c.n in sizes and c.combinations != int(check["combinations"])]
    if not bad:
        return []
    return [Finding("text", "inconsistency", f"claim {claim.id}: the text says {check['combinations']} combinations at "
                    f"n in {sizes}; {len(bad)} cell(s) print another count", tuple(describe(c) for c in bad[:6]))]


def check_claims(claims: list[TextClaim], cells: list[ReferenceCell]) -> list[Finding]:
    findings = []
    for claim in claims:
        for check in claim.checks:
            if check["kind"] == "unchecked":
                findings.append(Finding("text", "note", f"claim {claim.id} not checkable: {check['reason']} — "
                                        f"\"{claim.sentence}\""))
                continue
            if check["kind"] == "header":
                findings += _header_findings(claim, check, cells)
                continue
            selected = _select(cells, check)
            if not selected:
                findings.append(Finding("text", "inconsistency", f"claim {claim.id}: no table cell matches {check}; "
                                        "fix text_claims.yaml"))
                continue
            bad, expected = _failures(check, selected)
            if bad:
                severity = "note" if check.get("soft") else "inconsistency"
                findings.append(Finding("text", severity, f"claim {claim.id} ({claim.section}): the text says "
                                        f"{expected}; \"{claim.sentence}\"", tuple(describe(c) for c in bad)))
    return findings
