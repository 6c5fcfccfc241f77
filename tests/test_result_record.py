"""The result record type: what the store writes is what every record written before the type existed
looked like, byte for byte, so stored runs resume and the report renders them unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from repro.atomic_io import atomic_write_json
from repro.plan import Job, JobKind
from repro.results import ResultRecord, ResultsStore

DATA = Path(__file__).resolve().parent / "data"


def _geometry_record(job_id: str = "g1") -> dict:
    """A geometry record as the runner wrote it (no merge, evaluation, scores or averages)."""
    job = Job(job_id, JobKind.GEOMETRY, "tiny", 3, (1, 2, 3), experiment="geometry")
    return {"schema": 1, "job": job.to_json(), "config": {"name": "c", "hash": "h" * 64, "path": "configs/c.yaml"},
            "models": {"world": {"kind": "tiny"}, "base": "tiny", "checkpoints": [1, 2, 3]},
            "geometry": {"checkpoints": ["1", "2", "3"], "total": [[1.0, 0.5], [0.5, 2.0]], "layers": {}},
            "packages": {"torch": "2.13.0"}, "finished_at": "2026-01-01T00:00:00+00:00", "elapsed_s": 0.25,
            "worker": "host:1:abc"}


def test_a_stored_record_reads_typed_and_writes_back_byte_for_byte(tmp_path):
    """tests/data/result_record_merge.json: a merge job's record as the runner wrote it before the type
    existed (score rows and package list shortened)."""
    raw = (DATA / "result_record_merge.json").read_bytes()
    record = ResultRecord.from_json(json.loads(raw))
    assert record.job.kind is JobKind.MERGE and record.job.in_main_grid and record.extra == {}
    assert record.average == json.loads(raw)["average"] and record.task_vector_l2 > 0
    assert record.worker and record.items_file.startswith("items/")
    assert set(record.primary_scores()) <= {row["task"] for row in record.scores}
    store = ResultsStore(tmp_path)
    assert store.write_result(record).read_bytes() == raw
    assert store.read_result(record.job.id) == record


def test_geometry_records_keep_their_own_layout(tmp_path):
    stored = _geometry_record()
    record = ResultRecord.from_json(stored)
    assert record.to_json() == stored and record.geometry["checkpoints"] == ["1", "2", "3"]
    store = ResultsStore(tmp_path)
    assert store.write_result(record).read_bytes() == atomic_write_json(tmp_path / "old.json", stored).read_bytes()
    assert "average" not in json.loads(store.result_path("g1").read_text())


def test_adopted_records_and_unknown_keys_survive_a_round_trip(tmp_path):
    source, target = ResultsStore(tmp_path / "main"), ResultsStore(tmp_path / "appendix")
    stored = {**_geometry_record("g2"), "from_a_later_version": {"x": 1}}
    source.write_result(ResultRecord.from_json(stored))
    target.adopt(source, "g2")
    adopted = json.loads(target.result_path("g2").read_text())
    assert adopted == {**stored, "reused_from": {"config": "c", "runs_dir": "main"}}
    assert ResultRecord.from_json(adopted).to_json() == adopted


def test_the_index_is_built_from_typed_records(tmp_path):
    import sqlite3

    store = ResultsStore(tmp_path)
    store.write_result(ResultRecord.from_json(json.loads((DATA / "result_record_merge.json").read_text())))
    store.write_result(ResultRecord.from_json(_geometry_record()))
    con = sqlite3.connect(store.rebuild_index())
    rows = dict(con.execute("SELECT kind, subset FROM results").fetchall())
    assert rows == {"merge": "[4, 8]", "geometry": "[1, 2, 3]"}
    assert con.execute("SELECT count(*) FROM scores").fetchone()[0] == 2
