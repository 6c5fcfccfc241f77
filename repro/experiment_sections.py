"""Config sections of the appendix experiments and the report (part of the experiment config, read only
through repro.facts.config.load_config): Appendix C sweeps, Appendix D geometry, and which methods each table
shows. Sections of the schema in repro/facts/config_schema.py."""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from repro.method_catalog import default_table_methods


class _Strict(BaseModel):  # as repro.facts.config_schema._Strict: unknown keys are errors, values are frozen
    model_config = ConfigDict(extra="forbid", frozen=True)


class SweepSettings(_Strict):
    """Appendix C: one hyperparameter sweep. Every point merges ALL checkpoints of each base's pool with a
    method of `methods` whose parameters are overridden by one point of the grid (the cartesian product of
    `grid`'s value lists); each point is an ordinary merge job with a content id."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    figure: int = Field(ge=1)  # the paper's figure number (per-base figures: the first of the family)
    per_base: bool = False  # one figure per base (Figs 13-16) instead of one panel per base
    methods: list[str] = Field(default_factory=list)  # names or labels of `methods`; empty = all
    grid: dict[str, list[float | bool]] = Field(min_length=1)
    x: str | None = None  # grid parameter on the x axis, or "task_vector_l2"; default: the only grid key
    series: str | None = None  # grid parameter drawn as separate lines (e.g. density)
    title: str = ""

    @model_validator(mode="after")
    def _axes(self) -> SweepSettings:
        if any(len(values) == 0 for values in self.grid.values()):
            raise ValueError("every grid parameter needs at least one value")
        for axis, value in (("x", self.x), ("series", self.series)):
            if value is not None and value not in self.grid and not (axis == "x" and value == "task_vector_l2"):
                raise ValueError(f"{axis} {value!r} is not a grid parameter ({', '.join(self.grid)})")
        if self.x is None and len(self.grid) != 1:
            raise ValueError("set `x` (which grid parameter is the x axis) when the grid has several parameters")
        return self

    @property
    def x_axis(self) -> str:
        return self.x or next(iter(self.grid))


class GeometrySettings(_Strict):
    """Appendix D: pairwise dot products and norms of the task vectors of every base's pool, per tensor
    (streamed from the safetensors files) and per transformer block."""

    # |cos| <= zero_tolerance (or a task vector that is exactly zero in the layer) counts as neither
    # positive nor negative (the paper's "numerically indistinguishable from zero").
    zero_tolerance: float = Field(default=1e-6, ge=0)
    layer_pattern: str = r"(?:^|\.)layers\.(\d+)\."  # a tensor name's transformer block index


class ReportSettings(_Strict):
    """Which methods (registry names or labels of `methods`) each table shows; and the appendix configs
    `make reproduce-appendix CONFIG=this` runs (paths relative to this config's folder)."""

    table1: list[str] | None = None
    table2: list[str] | None = None
    table3: list[str] | None = None
    appendix_configs: list[str] = Field(default_factory=list)
    # left-to-right order of the per-base panels of every multi-panel figure (Figs 3, 4, 6, 11, 12, 17, 18):
    # base names of this config; bases not listed follow in config order
    panel_order: list[str] = Field(default_factory=list)

    @field_validator("panel_order")
    @classmethod
    def _distinct_panels(cls, value: list[str]) -> list[str]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(repeated)} more than once; list each base once")
        return value


# Table -> methods when a config's `report:` does not say (the paper's Tables 1-3): each method states its
# place in them (its `tables` trait in repro.method_catalog).
DEFAULT_REPORT_TABLES = default_table_methods()


def sweep_points(sweep: SweepSettings) -> list[dict[str, Any]]:
    """The grid of a sweep as parameter overrides, in the order the config lists the values."""
    keys = list(sweep.grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(sweep.grid[k] for k in keys))]
