"""The recipe of a trained offline world (`world: {kind: trained, ...}` in an experiment config).

A recipe states everything that determines the world's weights and evaluation tasks: the model
dimensions, the seed and CPU thread count, the pretraining mixture of the base, and per fine-tune its
skills, label conventions, text domains, replay share, steps and learning rate. It is validated here
against the skill registry (repro.worlds.skills); `recipe_hash` keys the world's cache folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator

from repro.worlds.skills import DOMAINS, SKILLS

WORLD_CODE_VERSION = 2  # bump when the trainer or the skills change what a recipe produces


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelDims(_Strict):
    """Llama architecture of every model of the world (character vocabulary, see skills.ALPHABET)."""

    hidden_size: int = Field(default=128, ge=16, le=1024)
    intermediate_size: int = Field(default=256, ge=16, le=4096)
    num_hidden_layers: int = Field(default=4, ge=1, le=16)
    num_attention_heads: int = Field(default=4, ge=1)
    num_key_value_heads: int = Field(default=2, ge=1)
    max_position_embeddings: int = Field(default=128, ge=32, le=2048)

    @model_validator(mode="after")
    def _heads(self) -> ModelDims:
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("hidden_size must divide by num_attention_heads, and heads by num_key_value_heads")
        return self


class TrainingStage(_Strict):
    """One training run: a mixture of skills (weights), conventions, domains, and optimizer settings."""

    skills: dict[str, float] = Field(min_length=1)  # skill -> sampling weight
    conventions: dict[str, str] = Field(default_factory=dict)  # skill -> convention (default "standard")
    domains: dict[str, float] = Field(default_factory=lambda: {"plain": 1.0})  # domain -> sampling weight
    replay: float = Field(default=0.0, ge=0.0, lt=1.0)  # share of each batch drawn from the base's mixture
    steps: int = Field(ge=1, le=100_000)
    batch_size: int = Field(default=32, ge=1, le=1024)
    lr: float = Field(gt=0, le=1.0)
    warmup_steps: int = Field(default=0, ge=0)

    @field_validator("skills", "domains")
    @classmethod
    def _positive(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(w <= 0 for w in weights.values()):
            raise ValueError("weights must be > 0")
        return weights

    @model_validator(mode="after")
    def _known(self) -> TrainingStage:
        problems = [f"unknown skill {s!r} (known: {', '.join(SKILLS)})" for s in self.skills if s not in SKILLS]
        for skill, convention in self.conventions.items():
            if skill not in SKILLS:
                problems.append(f"conventions: unknown skill {skill!r}")
            elif convention not in SKILLS[skill].conventions:
                problems.append(f"conventions: skill {skill!r} has no convention {convention!r} "
                                f"(known: {', '.join(SKILLS[skill].conventions)})")
        problems += [f"unknown domain {d!r} (known: {', '.join(DOMAINS)})" for d in self.domains if d not in DOMAINS]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class FineTune(TrainingStage):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = Field(min_length=1)  # what this checkpoint was trained on, in words


class WorldTasks(_Strict):
    """The held-out evaluation tasks the world writes (one lm-eval multiple-choice task per skill)."""

    skills: list[str] = Field(min_length=1)
    items_per_task: int = Field(default=50, ge=4, le=2000)
    seed: int = 0
    prefix: str = Field(default="synth", pattern=r"^[a-z][a-z0-9_]*$")  # task name = <prefix>_<skill>

    @field_validator("skills")
    @classmethod
    def _known(cls, skills: list[str]) -> list[str]:
        unknown = [s for s in skills if s not in SKILLS]
        if unknown:
            raise ValueError(f"unknown skill(s) {', '.join(unknown)} (known: {', '.join(SKILLS)})")
        if len(set(skills)) != len(skills):
            raise ValueError("a skill is listed twice")
        return skills


class FineTunedWorld(_Strict):
    """What every world config shares: a list `finetunes` of distinctly named fine-tunes (the checkpoints)."""

    @model_validator(mode="after")
    def _unique_names(self) -> FineTunedWorld:
        names = [f.name for f in self.finetunes]
        if len(set(names)) != len(names):
            raise ValueError("fine-tune names must be distinct")
        return self

    @property
    def checkpoints_per_base(self) -> int:
        return len(self.finetunes)

    def base_names(self) -> list[str]:
        return [self.name]

    def finetune_names(self) -> list[str]:
        return [f.name for f in self.finetunes]

    def written_tasks(self) -> frozenset[str] | None:
        return None


class TrainedWorldConfig(FineTunedWorld):
    """A small Llama pretrained on synthetic skills plus fine-tunes of it, built deterministically on CPU."""

    kind: Literal["trained"]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # the base's name in plans and tables
    seed: int = 0
    threads: int = Field(default=2, ge=1, le=256)  # torch CPU threads while training (recorded; part of the key)
    # torch CPU threads while pretraining the base, one process (default: `threads`); part of the key
    pretrain_threads: int | None = Field(default=None, ge=1, le=256)
    model: ModelDims = Field(default_factory=ModelDims)
    pretrain: TrainingStage
    finetunes: list[FineTune] = Field(min_length=1, max_length=64)
    tasks: WorldTasks

    def written_tasks(self) -> frozenset[str] | None:
        return frozenset(f"{self.tasks.prefix}_{skill}" for skill in self.tasks.skills)

    @model_serializer(mode="wrap")
    def _omit_unset_pretrain_threads(self, handler):
        """An unset `pretrain_threads` is left out of the dump, so that the recipe hash and the job ids of a
        world written before the field existed stay what they were."""
        data = handler(self)
        if isinstance(data, dict) and data.get("pretrain_threads", 0) is None:
            del data["pretrain_threads"]
        return data

    @property
    def base_threads(self) -> int:
        """torch CPU threads of the base's pretraining (one process)."""
        return self.pretrain_threads or self.threads


def recipe_hash(world: TrainedWorldConfig) -> str:
    """What the world's weights depend on (tasks excluded: they are written separately)."""
    content = {
        "code": WORLD_CODE_VERSION,
        "recipe": world.model_dump(mode="json", exclude={"tasks"}),
        "held_out": world.tasks.model_dump(mode="json"),  # training excludes these items
        "torch": importlib.metadata.version("torch"),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
