"""A failed grid merge falls back to merging the job alone only for the declared condition: a MergeError
(inputs that make a merge impossible, e.g. one checkpoint with NaN; tests/test_runner_grid.py runs that end
to end). Any other exception is a bug of the kit and reaches the caller unchanged."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from repro.errors import MergeError
from repro.plan import Job, JobKind
from repro.runner.job_executor import JobExecutor


def _executor(error: Exception):
    """A JobExecutor whose grid pass raises `error` (only what `_merge_in_memory` reads is set)."""
    jobs = [Job(f"j{i}", JobKind.MERGE, "b", 2, (1, i + 2), "ties", "TIES", {"density": 0.2}) for i in range(3)]
    executor = object.__new__(JobExecutor)
    computed = []

    class Grid:
        def take(self, job_id):
            return None

        def capacity(self, base_dir, out_dtype):
            return len(jobs)

        def compute(self, peers, base_dir, inputs, options):
            computed.append([peer.id for peer in peers])
            raise error

    executor._grid = Grid()
    executor.upcoming = jobs
    executor.store = SimpleNamespace(finished_ids=set)
    executor.sources = SimpleNamespace(base_dir=lambda base: Path("base"))
    executor.loaded = SimpleNamespace(config=SimpleNamespace(merge=SimpleNamespace(out_dtype="float32")))
    executor._input_dirs = lambda job: [Path(f"ft-{i}") for i in job.subset]
    executor._register_revisions = lambda job, base_dir, dirs: None
    executor._merge_options = dict
    executor._merge = lambda job, out_dir: f"{job.id} merged alone"
    return executor, jobs, computed


def test_a_merge_error_in_the_grid_pass_merges_the_job_alone(caplog):
    executor, jobs, computed = _executor(MergeError("checkpoint ft-3 has NaN in model.embed_tokens.weight"))
    with caplog.at_level(logging.WARNING, logger="repro.runner.job_executor"):
        assert executor._merge_in_memory(jobs[0]) == "j0 merged alone"
    assert computed == [["j0", "j1", "j2"]] and "grid merge of 3 jobs failed" in caplog.text


@pytest.mark.parametrize("bug", [TypeError("unsupported operand"), KeyError("model.norm.weight"),
                                 AssertionError("shape")])
def test_a_bug_in_the_grid_pass_is_not_hidden_by_merging_alone(bug):
    executor, jobs, _ = _executor(bug)
    with pytest.raises(type(bug)):
        executor._merge_in_memory(jobs[0])
