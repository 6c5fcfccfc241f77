"""The results store of one experiment, under runs/<config>/.

Layout (every file written atomically: temp file + rename, so a reader never sees half a result):
    results/<job_id>.json      the result record of a finished job (the commit marker of the job)
    items/<job_id>.json.gz     per-item correctness for paired statistics (written before the record)
    failed/<job_id>.json       the error of a failed job (retried only on request)
    index.sqlite               a query index rebuilt from results/ (never the source of truth)
    journal.jsonl              one appended line per job start/finish/failure, with the worker (audit log)

The files are the source of truth because SQLite locking is unreliable on shared network filesystems;
many workers may write results at once, and the index is rebuilt by whoever asks for it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from repro.atomic_io import atomic_write_bytes, atomic_write_json
from repro.results.record import ResultRecord


def _is_complete(path: Path) -> bool:
    """Whether a JSON file written by atomic_write_json (indent 2, trailing newline) is complete."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(size - 3, 0))
            tail = handle.read()
            # an empty object is complete only as the whole file: a cut after a nested `{}` is not
            return tail == b"\n}\n" or (size == 3 and tail == b"{}\n")
    except OSError:
        return False


class ResultsStore:
    def __init__(self, runs_dir: str | os.PathLike):
        self.root = Path(runs_dir)
        self.results_dir = self.root / "results"
        self.items_dir = self.root / "items"
        self.failed_dir = self.root / "failed"
        self.index_path = self.root / "index.sqlite"

    # -- results -------------------------------------------------------------------------------------
    def result_path(self, job_id: str) -> Path:
        return self.results_dir / f"{job_id}.json"

    def items_path(self, job_id: str) -> Path:
        return self.items_dir / f"{job_id}.json.gz"

    def has_result(self, job_id: str) -> bool:
        return _is_complete(self.result_path(job_id))

    def finished_ids(self) -> set[str]:
        """Jobs with a complete result file. Temp files are never listed, and a truncated file (e.g. in a
        copy of the folder interrupted mid-file) does not count: a complete record ends with the closing
        brace that only the top-level object has at column 0."""
        if not self.results_dir.is_dir():
            return set()
        return {
            p.name[: -len(".json")]
            for p in self.results_dir.glob("*.json")
            if not p.name.startswith(".") and _is_complete(p)
        }

    def write_result(self, record: ResultRecord) -> Path:
        job_id = record.job.id
        path = atomic_write_json(self.result_path(job_id), record.to_json())
        self.clear_failure(job_id)
        return path

    def read_result(self, job_id: str) -> ResultRecord:
        return ResultRecord.from_json(json.loads(self.result_path(job_id).read_text(encoding="utf-8")))

    def adopt(self, other: ResultsStore, job_id: str) -> Path:
        """Copy the finished job `job_id` of another experiment's store into this one (items first, then the
        result file, both atomically), recording where it came from: the same content id means the same
        job, so it is never rerun."""
        record = other.read_result(job_id)
        source_items = other.items_path(job_id)
        if source_items.is_file():
            atomic_write_bytes(self.items_path(job_id), source_items.read_bytes())
        return atomic_write_json(self.result_path(job_id), record.adopted(record.config_name, other.root.name).to_json())

    def iter_results(self) -> Iterator[ResultRecord]:
        """Every finished result, in job-id order (temporary files are never read)."""
        for job_id in sorted(self.finished_ids()):
            yield self.read_result(job_id)

    # -- failures ------------------------------------------------------------------------------------
    def failure_path(self, job_id: str) -> Path:
        return self.failed_dir / f"{job_id}.json"

    def write_failure(self, job: dict, error: str, traceback_text: str = "") -> Path:
        return atomic_write_json(
            self.failure_path(job["id"]), {"job": job, "error": error, "traceback": traceback_text}
        )

    def failed_ids(self) -> set[str]:
        if not self.failed_dir.is_dir():
            return set()
        return {p.name[: -len(".json")] for p in self.failed_dir.glob("*.json") if not p.name.startswith(".")}

    def read_failure(self, job_id: str) -> dict:
        return json.loads(self.failure_path(job_id).read_text(encoding="utf-8"))

    def clear_failure(self, job_id: str) -> None:
        self.failure_path(job_id).unlink(missing_ok=True)

    # -- journal -------------------------------------------------------------------------------------
    def journal(self, job_id: str, worker: str, event: str) -> None:
        """Append one line to journal.jsonl (a single O_APPEND write: lines of workers never interleave)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"job": job_id, "worker": worker, "event": event, "time": time.time()}) + "\n"
        fd = os.open(self.root / "journal.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def read_journal(self) -> list[dict]:
        path = self.root / "journal.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    # -- index ---------------------------------------------------------------------------------------
    def rebuild_index(self) -> Path:
        """Build index.sqlite from the result files into a temp file, then rename it into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".sqlite.tmp", dir=self.root)
        os.close(fd)
        try:
            con = sqlite3.connect(tmp)
            with con:
                con.executescript(
                    """
                    CREATE TABLE results (job_id TEXT PRIMARY KEY, kind TEXT, base TEXT, method TEXT,
                        label TEXT, n INTEGER, subset TEXT, average REAL, task_vector_l2 REAL,
                        config_hash TEXT, finished_at TEXT);
                    CREATE TABLE scores (job_id TEXT, task TEXT, metric TEXT, value REAL, stderr REAL,
                        num_fewshot INTEGER, PRIMARY KEY (job_id, task, metric));
                    """
                )
                for record in self.iter_results():
                    job = record.job
                    con.execute(
                        "INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            job.id, str(job.kind), job.base, job.method, job.label, job.n,
                            json.dumps(list(job.subset)), record.average, record.task_vector_l2,
                            record.config["hash"], record.finished_at,
                        ),
                    )
                    con.executemany(
                        "INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?)",
                        [
                            (job.id, row["task"], row["metric"], row["value"], row.get("stderr"),
                             row.get("n_shot"))
                            for row in record.scores
                        ],
                    )
            con.close()
            os.replace(tmp, self.index_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.index_path
