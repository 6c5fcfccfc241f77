"""`repro verify --published`: each rule on constructed tables with known faults, and the real tables."""

import csv

import pytest
import yaml

from repro.cli import main
from repro.facts.reference import COLUMNS, ReferenceError, load_reference
from repro.report.published_checks import check_published

SIZES = ((1, 12), (2, 15), (12, 1))
# A self-consistent pair of tables: per model (base, best, Table 1 TA cells, Table 2 cells) by n.
CONSISTENT = {
    "M1": ("50.0", "50.5", {1: ("25", "-0.40"), 2: ("60", "+0.20"), 12: ("100", "+0.30")},
           {1: ("0", "-0.90"), 2: ("20", "-0.30"), 12: ("0", "-0.20")}),
    "M2": ("60.0", "60.2", {1: ("50", "-0.10"), 2: ("80", "+0.40"), 12: ("100", "+0.50")},
           {1: ("0", "-0.30"), 2: ("53", "+0.20"), 12: ("100", "+0.30")}),
    "Average": ("55.0", "55.4", {1: ("38", "-0.25"), 2: ("70", "+0.30"), 12: ("100", "+0.40")},
                {1: ("0", "-0.60"), 2: ("37", "-0.05"), 12: ("50", "+0.05")}),
}


def _rows():
    rows = []
    for model, (base, best, t1, t2) in CONSISTENT.items():
        for n, k in SIZES:
            rows.append(dict(zip(COLUMNS, ("table1", model, "TA", "Base", base, n, k, *t1[n]), strict=True)))
            rows.append(dict(zip(COLUMNS, ("table2", model, "TA", "Best FT", best, n, k, *t2[n]), strict=True)))
    return rows


def _write(tmp_path, rows, claims=None):
    with (tmp_path / "tables.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    if claims is not None:
        (tmp_path / "text_claims.yaml").write_text(yaml.safe_dump({"claims": claims}))
    return load_reference(tmp_path)


def _set(rows, table, model, n, **values):
    for row in rows:
        if row["table"] == table and row["model"] == model and (n is None or row["n"] == n):
            row.update(values)
    return rows


def _bad(findings, rule):
    return [f for f in findings if f.rule == rule and f.severity == "inconsistency"]


def test_consistent_tables_have_no_inconsistency(tmp_path):
    findings = check_published(_write(tmp_path, _rows()))
    assert [f for f in findings if f.severity == "inconsistency"] == []


def test_average_row_off_by_more_than_rounding(tmp_path):
    rows = _set(_rows(), "table1", "Average", 2, delta="+0.35")
    found = _bad(check_published(_write(tmp_path, rows)), "average")
    assert len(found) == 1 and "table1 Average TA n=2" in found[0].message
    assert any("M1 / TA / n=2" in c for c in found[0].cells) and any("Average / TA / n=2" in c for c in found[0].cells)


def test_average_of_rounded_percentages_is_a_note(tmp_path):
    rows = _set(_rows(), "table2", "M2", 2, percentage="47", delta="+0.20")  # 3/15 and 7/15: exact 33.3 %
    rows = _set(rows, "table2", "Average", 2, percentage="34")  # mean of the printed 20 and 47 = 33.5
    findings = check_published(_write(tmp_path, rows))
    assert not _bad(findings, "average")
    assert any(f.rule == "average" and f.severity == "note" and "33.33" in f.message for f in findings)


def test_table2_delta_not_shifted_like_table1(tmp_path):
    rows = _set(_rows(), "table2", "M1", 2, delta="-0.25")
    found = _bad(check_published(_write(tmp_path, rows)), "shift")
    assert len(found) == 1 and found[0].message.startswith("M1 n=2")
    assert found[0].cells == ("table1 M1 / TA / n=2: 60 / +0.20 (Base 50.0)", "table2 M1 / TA / n=2: 20 / -0.25 (Best FT 50.5)")


def test_table2_shift_against_printed_accuracies(tmp_path):
    rows = _set(_rows(), "table2", "M2", None, reference_accuracy="61.0")  # base - best = -1.0, deltas say -0.2
    found = _bad(check_published(_write(tmp_path, rows)), "shift")
    assert {f.message.split(":")[0] for f in found} == {"M2 n=1", "M2 n=2", "M2 n=12"}


def test_stronger_reference_beaten_more_often(tmp_path):
    rows = _set(_rows(), "table2", "M1", 2, percentage="67")  # best > base, yet 67 % > 60 %
    found = _bad(check_published(_write(tmp_path, rows)), "shift")
    assert any("stronger than the base" in f.message for f in found)


def test_impossible_percentage_for_the_number_of_combinations(tmp_path):
    rows = _set(_rows(), "table1", "M1", 2, percentage="66")
    rows = _set(rows, "table1", "M2", 1, percentage="49")  # not k/12
    found = _bad(check_published(_write(tmp_path, rows)), "rounding")
    assert sorted(f.message.split(":")[0] for f in found) == ["table1 M1 TA n=2", "table1 M2 TA n=1"]
    assert "66.67" in found[0].message or "66.67" in found[1].message


def test_best_checkpoint_cannot_beat_itself(tmp_path):
    rows = _set(_rows(), "table2", "M1", 1, percentage="8")
    found = _bad(check_published(_write(tmp_path, rows)), "logic")
    assert len(found) == 1 and "best cannot beat itself" in found[0].message
    assert found[0].cells == ("table2 M1 / TA / n=1: 8 / -0.90 (Best FT 50.5)",)


def test_best_checkpoint_below_base_although_checkpoints_beat_base(tmp_path):
    rows = _set(_rows(), "table2", "M1", None, reference_accuracy="49.0")
    found = _bad(check_published(_write(tmp_path, rows)), "logic")
    assert any("best checkpoint must exceed it" in f.message for f in found)


def test_all_beat_but_negative_delta_and_n1_columns_differ(tmp_path):
    rows = _set(_rows(), "table1", "M2", 12, delta="-0.10")
    rows.append(dict(zip(COLUMNS, ("table1", "M2", "TIES", "Base", "60.0", 1, 12, "42", "-0.10"), strict=True)))
    found = _bad(check_published(_write(tmp_path, rows)), "logic")
    messages = " | ".join(f.message for f in found)
    assert "every combination beats the reference, yet the mean delta is not positive" in messages
    assert "the single checkpoints are the same for every method" in messages


def test_text_claims_against_tables(tmp_path):
    claims = [
        {"id": "ok", "section": "3", "sentence": "M1 reaches +0.30 at n=12.",
         "checks": [{"kind": "cell", "table": "table1", "model": "M1", "method": "TA", "n": 12, "field": "delta",
                     "value": 0.3}]},
        {"id": "wrong", "section": "3", "sentence": "M2 wins 100% for all n >= 2.",
         "checks": [{"kind": "all", "table": "table1", "model": "M2", "method": "TA", "n_min": 2,
                     "field": "percentage", "op": "==", "value": 100}]},
        {"id": "hedged", "section": "3", "sentence": "Gains generally below 0.3.",
         "checks": [{"kind": "all", "table": "table1", "model": "*", "method": "TA", "n_min": 2, "field": "delta",
                     "op": "<", "value": 0.3, "soft": True}]},
        {"id": "typo", "section": "3", "sentence": "M9 does x.",
         "checks": [{"kind": "cell", "table": "table1", "model": "M9", "method": "TA", "n": 2, "field": "delta",
                     "value": 0}]},
        {"id": "falls", "section": "4", "sentence": "M1 declines monotonically.",
         "checks": [{"kind": "monotonic", "table": "table1", "model": "M1", "method": "TA", "n_min": 1,
                     "field": "delta", "direction": "decreasing"}]},
    ]
    findings = [f for f in check_published(_write(tmp_path, _rows(), claims)) if f.rule == "text"]
    by_claim = {f.message.split(":")[0].split(" (")[0]: f for f in findings}
    assert "claim ok" not in by_claim
    assert by_claim["claim wrong"].severity == "inconsistency"
    assert by_claim["claim wrong"].cells == ("table1 M2 / TA / n=2: 80 / +0.40 (Base 60.0)",)
    assert by_claim["claim hedged"].severity == "note"
    assert by_claim["claim typo"].severity == "inconsistency" and "no table cell matches" in by_claim["claim typo"].message
    assert by_claim["claim falls"].severity == "inconsistency"


def test_cli_writes_report_and_exits_0(tmp_path, capsys):
    _write(tmp_path, _set(_rows(), "table1", "M1", 2, percentage="66"))
    out = tmp_path / "report.md"
    assert main(["verify", "--published", "--reference", str(tmp_path), "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("verify --published: 18 cells") and "rounding 1" in line
    assert "66% is not k/15" in out.read_text()


def test_malformed_reference_lists_every_problem(tmp_path, capsys):
    rows = _set(_rows(), "table1", "M1", 2, percentage="sixty")
    rows = _set(rows, "table1", "M2", 2, combinations="two")
    _write_raw = tmp_path / "tables.csv"
    with _write_raw.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ReferenceError) as err:
        load_reference(tmp_path)
    assert "percentage='sixty'" in str(err.value) and "combinations='two'" in str(err.value)
    assert main(["verify", "--published", "--reference", str(tmp_path)]) == 2
    assert "tables.csv" in capsys.readouterr().err


def test_the_published_tables():
    """The transcription itself: 280 cells, and the faults a reader can see in the paper are found."""
    reference = load_reference()
    assert len(reference.cells) == 280
    findings = check_published(reference)
    messages = [f.message for f in findings if f.severity == "inconsistency"]
    assert any(m.startswith("table1 QWEN-4B TIES n=2: 66%") for m in messages)
    assert any(m.startswith("table3 QWEN-8B TIES + SB n=2: 66%") for m in messages)
    assert any("table2 QWEN-4B n=1" in m and "cannot beat itself" in m for m in messages)
    assert any("table3 Average TA + SB n=4" in m for m in messages)
