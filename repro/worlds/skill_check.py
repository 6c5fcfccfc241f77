"""What a trained world's models learned: accuracy per skill under a model's own convention and domain.

The evaluation tasks score the standard convention in the plain domain; a fine-tune trained on a
conflicting convention (descending sorting, say) or another domain is checked here on the same held-out
problems posed its way. Scoring is lm-eval's multiple-choice rule (sum of the continuation's token
log-probabilities, highest wins) computed directly with torch, one batch per item.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repro.worlds.recipe import TrainedWorldConfig, TrainingStage
from repro.worlds.skills import encode, eval_items


@dataclass(frozen=True)
class SkillScore:
    skill: str
    convention: str
    domain: str
    correct: int
    items: int
    chance: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.items


def choice_logprobs(model, prompts: list[str], choices: list[list[str]]) -> list[list[float]]:
    """Per prompt, the summed log-probability of each `" " + choice` continuation (one forward pass)."""
    # torch: deferred so that importing this module does not load it
    import torch

    rows, spans = [], []
    for prompt, options in zip(prompts, choices, strict=True):
        context = encode(prompt)
        for option in options:
            rows.append(context + encode(" " + option))
            spans.append(len(context))
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)
    flat = []
    for i, (row, start) in enumerate(zip(rows, spans, strict=True)):
        positions = torch.arange(start, len(row))
        flat.append(float(logprobs[i, positions - 1, torch.tensor(row[start:])].sum()))
    out, k = [], 0
    for options in choices:
        out.append(flat[k:k + len(options)])
        k += len(options)
    return out


def score_skill(model, skill: str, *, convention: str = "standard", domain: str = "plain",
                count: int = 50, seed: int = 0) -> SkillScore:
    """Accuracy of `model` on `count` held-out items of `skill` posed with `convention` and `domain`."""
    items = eval_items(skill, count, seed, convention, domain)
    choices = [item.choices() for item in items]  # the convention's answer first
    scores = choice_logprobs(model, [item.prompt for item in items], choices)
    correct = sum(int(max(range(len(s)), key=s.__getitem__) == 0) for s in scores)
    return SkillScore(skill, convention, domain, correct, len(items), 1 / len(choices[0]))


def trained_skills(stage: TrainingStage) -> list[tuple[str, str, str]]:
    """(skill, convention, main domain) for every skill a stage trains on."""
    domain = max(stage.domains.items(), key=lambda kv: kv[1])[0]
    return [(skill, stage.conventions.get(skill, "standard"), domain) for skill in stage.skills]


def check_world(world: TrainedWorldConfig, model_dirs: dict[str, Path]) -> dict[str, list[SkillScore]]:
    """Per model ("base", "ft-01", ...): its scores on the skills it was trained on, its own way, on the
    world's held-out problems (the evaluation tasks' items, posed with the model's convention/domain)."""
    count = world.tasks.items_per_task
    # torch, transformers: deferred so that importing this module does not load them
    import torch
    from transformers import AutoModelForCausalLM

    stages = {"base": world.pretrain, **{f"ft-{i:02d}": f for i, f in enumerate(world.finetunes, start=1)}}
    out = {}
    for name, path in model_dirs.items():
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        out[name] = [score_skill(model, skill, convention=convention, domain=domain, count=count,
                                 seed=world.tasks.seed)
                     for skill, convention, domain in trained_skills(stages[name])]
    return out
