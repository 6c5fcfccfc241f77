"""The `kind: tiny` world of a config: tiny random base models and "fine-tuned" variants (repro.worlds.tiny)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FAMILIES = ("llama", "qwen3")
BASE_PREFIX = "tiny-"


def tiny_base_name(family: str) -> str:
    """The base name of a tiny world's family in plans and tables (`tiny-llama`)."""
    return f"{BASE_PREFIX}{family}"


def tiny_family(base: str) -> str:
    return base.removeprefix(BASE_PREFIX)


class TinyWorldConfig(BaseModel):
    """A generated offline world: tiny random base models and "fine-tuned" variants (repro.worlds.tiny)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["tiny"] = "tiny"
    families: list[Literal[FAMILIES]] = Field(min_length=1)
    checkpoints_per_base: int = Field(ge=1, le=64)
    seed: int = 0

    def base_names(self) -> list[str]:
        return [tiny_base_name(family) for family in self.families]

    def finetune_names(self) -> list[str]:
        return []

    def written_tasks(self) -> frozenset[str] | None:
        return None
