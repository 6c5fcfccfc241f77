"""What a job is: its kind, and the part of the study it belongs to. The one home of these names; the
plan (repro.plan) and the content ids (repro.job_ids) build on them, everything else compares members."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class JobKind(StrEnum):
    """What a job does. A StrEnum: it compares equal to, hashes and serializes as its value, so stored
    plans and content ids (`{"kind": "merge", ...}`) are unchanged. Code that branches on a job's kind
    handles every member (see `describe_job`, `Plan.counts`); a new kind fails their tests until it does."""

    BASE = "base"  # evaluate the base model
    SINGLE = "single"  # evaluate one checkpoint (n = 1)
    MERGE = "merge"  # merge a subset of the pool (grid or sweep point), evaluate the merge
    HOMOGENEOUS = "homogeneous"  # merge whole expert groups of the lockfile (Appendix E), evaluate
    GEOMETRY = "geometry"  # task-vector geometry of the pool; no merge, no evaluation


MERGING_KINDS = frozenset({JobKind.MERGE, JobKind.HOMOGENEOUS})  # the kinds whose model is a merge


class Part(StrEnum):
    """Which part of the study a job belongs to (what a job's stored `experiment` field means)."""

    GRID = "grid"  # the main grid (Table 1, Figures 3-4): its base and single jobs are every table's references
    SWEEP = "sweep"  # a point of an Appendix C sweep (a merge job); `PartOf.name` is the sweep's name
    GEOMETRY = "geometry"  # Appendix D: the task-vector geometry of a pool
    HOMOGENEOUS = "homogeneous"  # Appendix E: `PartOf.name` is the experiment, None for the base evaluation


@dataclass(frozen=True)
class PartOf:
    """A job's part of the study, typed: `Job.part_of`."""

    part: Part
    name: str | None = None  # the sweep's or the homogeneous experiment's name

