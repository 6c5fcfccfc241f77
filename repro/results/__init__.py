"""Results: one atomically written JSON file per finished job, and an SQLite index built from them."""

from repro.results.record import RESULT_SCHEMA, ResultRecord
from repro.results.store import ResultsStore

__all__ = ["RESULT_SCHEMA", "ResultRecord", "ResultsStore"]
