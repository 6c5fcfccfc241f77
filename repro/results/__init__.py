"""Results: one atomically written JSON file per finished job, and an SQLite index built from them."""

from repro.results.store import ResultsStore

__all__ = ["ResultsStore"]
