"""The trained offline world: a small Llama pretrained on synthetic skills and fine-tuned 12 ways, on CPU.

`build_trained_world(recipe, folder)` trains, deterministically (seeded, torch deterministic algorithms,
a fixed CPU thread count restored afterwards), and caches under `folder`:

    base/            pretrained on `recipe.pretrain` (a mixture of every skill)
    ft-01 ... ft-NN  each fine-tuned from base on its own mixture, conventions and domains, with replay
    world.json       the recipe, its hash, thread count, versions, per-model training summary (written last)

Every model directory is an ordinary Hugging Face directory (config.json, model.safetensors, a
character-level tokenizer) plus repro_world.json (its stage recipe, final loss, seconds). A model whose
directory is complete is reused, so an interrupted build resumes; a finished world is never retrained.
Loss is on the answer characters only (the continuation that lm-eval scores).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import multiprocessing
import os
import random
import shutil
import time
from collections.abc import Collection
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, models

from repro.atomic_io import atomic_directory, atomic_write_json
from repro.worlds.recipe import WORLD_CODE_VERSION, TrainedWorldConfig, TrainingStage, recipe_hash
from repro.worlds.skill_check import check_world
from repro.worlds.skills import SKILLS, SPECIAL_TOKENS, VOCAB, encode
from repro.worlds.world_tasks import held_out_keys

WORLD_FILE = "world.json"
MODEL_META = "repro_world.json"
BUCKET = 8  # batches drawn at once and grouped by length


@dataclass(frozen=True)
class TrainedWorld:
    name: str
    root: Path
    base: Path
    checkpoints: tuple[Path, ...]


def world_folder(runs_root: Path, world: TrainedWorldConfig) -> Path:
    return Path(runs_root) / "worlds" / f"{world.name}-{recipe_hash(world)[:12]}"


def build_tokenizer():
    """One token per character of skills.ALPHABET (a BPE model without merges and no pre-tokenizer)."""
    # transformers: deferred so that importing this module does not load it
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(vocab=dict(VOCAB), merges=[], unk_token="<unk>"))
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>",
        model_max_length=512,
    )


def model_config(world: TrainedWorldConfig):
    # transformers: deferred so that importing this module does not load it
    from transformers import LlamaConfig

    return LlamaConfig(
        **world.model.model_dump(),
        vocab_size=len(VOCAB),
        pad_token_id=VOCAB["<pad>"],
        bos_token_id=VOCAB["<bos>"],
        eos_token_id=VOCAB["<eos>"],
        tie_word_embeddings=False,
        rope_theta=10000.0,
        dtype="float32",
    )


@contextlib.contextmanager
def deterministic_torch(threads: int):
    """Fixed thread count and deterministic kernels for the duration; the caller's settings come back."""
    # torch: deferred so that importing this module does not load it
    import torch

    threads_before, deterministic_before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads_before)
        torch.use_deterministic_algorithms(deterministic_before)


class ExampleStream:
    """Training examples of one stage: its mixture, plus `replay` of the base mixture (standard, its domains)."""

    def __init__(self, stage: TrainingStage, base_stage: TrainingStage, seed: str, held_out: set[str]):
        self.rng = random.Random(seed)
        self.stage, self.base_stage, self.held_out = stage, base_stage, held_out
        self._queue: list[list] = []

    def _one(self, stage: TrainingStage, conventions: dict[str, str]):
        skills, weights = zip(*stage.skills.items(), strict=True)
        domains, domain_weights = zip(*stage.domains.items(), strict=True)
        while True:
            skill = self.rng.choices(skills, weights)[0]
            domain = self.rng.choices(domains, domain_weights)[0]
            item = SKILLS[skill].make(self.rng, conventions.get(skill, "standard"), domain)
            if item.key not in self.held_out:
                return item

    def batch(self, size: int) -> list:
        """The next batch. Examples are drawn BUCKET batches at a time and grouped by length, so that
        right-padding wastes little compute; the order of the batches within a bucket is shuffled."""
        if not self._queue:
            drawn = [self._draw() for _ in range(size * BUCKET)]
            drawn.sort(key=lambda item: len(item.prompt) + len(item.answer))
            chunks = [drawn[i:i + size] for i in range(0, len(drawn), size)]
            self.rng.shuffle(chunks)
            self._queue = chunks
        return self._queue.pop()

    def _draw(self):
        if self.stage.replay and self.rng.random() < self.stage.replay:
            return self._one(self.base_stage, {})
        return self._one(self.stage, self.stage.conventions)


def _tensors(items: list):
    """Right-padded input ids and labels (-100 except on the " answer" characters)."""
    # torch: deferred so that importing this module does not load it
    import torch

    rows, labels = [], []
    for item in items:
        prompt, continuation = encode(item.prompt), encode(" " + item.answer)
        rows.append(prompt + continuation)
        labels.append([-100] * len(prompt) + continuation)
    width = max(len(r) for r in rows)
    pad = VOCAB["<pad>"]
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    target = torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels])
    return ids, target


def _lr_at(step: int, stage: TrainingStage) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step < stage.warmup_steps:
        return stage.lr * (step + 1) / stage.warmup_steps
    progress = (step - stage.warmup_steps) / max(1, stage.steps - stage.warmup_steps)
    return stage.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_stage(model, stage: TrainingStage, base_stage: TrainingStage, seed: str, held_out: set[str]) -> dict:
    # torch: deferred so that importing this module does not load it
    import torch

    stream = ExampleStream(stage, base_stage, seed, held_out)
    optimizer = torch.optim.AdamW(model.parameters(), lr=stage.lr, betas=(0.9, 0.98), weight_decay=0.0)
    model.train()
    losses = []
    for step in range(stage.steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, stage)
        ids, labels = _tensors(stream.batch(stage.batch_size))
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": stage.steps, "first_loss": round(losses[0], 4), "final_loss": round(sum(tail) / len(tail), 4)}


def _complete(folder: Path, stage_json: dict) -> bool:
    meta = folder / MODEL_META
    if not (meta.is_file() and (folder / "model.safetensors").is_file()):
        return False
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("stage") == stage_json
    except ValueError:
        return False


def _save(model, tokenizer, folder: Path, meta: dict) -> None:
    with atomic_directory(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / MODEL_META, meta)


def _model_dirs(built: TrainedWorld, skip: Collection[int] = ()) -> dict[str, Path]:
    """{name in world.json: folder} of the world's models, the base ("base") first, then the fine-tunes
    ("ft-01", ...) but those numbered in `skip`."""
    return {"base": built.base, **{f"ft-{i:02d}": path for i, path in enumerate(built.checkpoints, start=1)
                                   if i not in skip}}


def load_world(folder: Path, world: TrainedWorldConfig) -> TrainedWorld:
    folder = Path(folder)
    return TrainedWorld(world.name, folder, folder / "base",
                        tuple(folder / f"ft-{i:02d}" for i in range(1, len(world.finetunes) + 1)))


def _train_finetune(world_json: dict, folder: str, index: int, held_out: set[str]) -> tuple[dict, dict]:
    """Fine-tune checkpoint `index` (1-based) from the saved base, then check what it learned (`_scores`);
    also the worker-process entry point. Returns (training summary, learned scores)."""
    # torch, transformers: deferred so that importing this module does not load them
    import torch
    from transformers import AutoModelForCausalLM

    world = TrainedWorldConfig.model_validate(world_json)
    built = load_world(Path(folder), world)
    finetune, path = world.finetunes[index - 1], built.checkpoints[index - 1]
    with deterministic_torch(world.threads):
        started = time.monotonic()
        model = AutoModelForCausalLM.from_pretrained(built.base, dtype=torch.float32)
        stats = train_stage(model, finetune, world.pretrain, f"{world.seed}:ft:{index}:{finetune.name}", held_out)
        stats["seconds"] = round(time.monotonic() - started, 1)
        _save(model, build_tokenizer(), path, {"role": "checkpoint", "index": index, "name": finetune.name,
                                               "stage": finetune.model_dump(mode="json"), "training": stats})
    return stats, _scores(world, {f"ft-{index:02d}": path})


def _default_workers(world: TrainedWorldConfig) -> int:
    return max(1, (os.cpu_count() or 1) // world.threads)


def build_trained_world(world: TrainedWorldConfig, folder: Path, *, log=None, workers: int | None = None) -> TrainedWorld:
    """Train (or reuse) every model of `world` under `folder`. `log(str)` reports progress.

    The base trains in this process with `world.base_threads` threads. Fine-tunes are independent:
    `workers` processes (default: CPUs // world.threads) train them side by side, each with
    `world.threads` threads, so the weights do not depend on the number of workers; each worker then
    checks what its fine-tune learned, while this process checks the models trained before.
    """
    built = load_world(folder, world)
    digest = recipe_hash(world)
    marker = built.root / WORLD_FILE
    log = log or (lambda message: None)
    if marker.is_file():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if recorded.get("recipe_hash") == digest:
            if "learned" not in recorded:  # worlds built before the check was recorded
                atomic_write_json(marker, {**recorded, "learned": _learned(world, built, log)})
            return built
    # torch, transformers: deferred so that importing this module (or finding the world built) does not load them
    import torch
    from transformers import LlamaForCausalLM

    held_out = held_out_keys(world.tasks)
    base_stage = world.pretrain.model_dump(mode="json")
    if not _complete(built.base, base_stage):
        source = _copy_identical_base(world, built, base_stage)
        if source is not None:
            log(f"{world.name} base: the identical base of finished world {source.name} (same pretraining "
                "recipe, seed, model, held-out tasks, threads and torch), copied instead of retrained")
    if not _complete(built.base, base_stage):
        with deterministic_torch(world.base_threads):
            started = time.monotonic()
            torch.manual_seed(world.seed)
            model = LlamaForCausalLM(model_config(world))
            stats = train_stage(model, world.pretrain, world.pretrain, f"{world.seed}:pretrain", held_out)
            stats["seconds"] = round(time.monotonic() - started, 1)
            _save(model, build_tokenizer(), built.base, {"role": "base", "stage": base_stage, "training": stats})
        log(f"{world.name} base: {stats['steps']} steps, loss {stats['first_loss']} -> "
            f"{stats['final_loss']}, {stats['seconds']} s")
    pending = [i for i, (f, path) in enumerate(zip(world.finetunes, built.checkpoints, strict=True), start=1)
               if not _complete(path, f.model_dump(mode="json"))]
    world_json = world.model_dump(mode="json")
    workers = min(len(pending), workers or _default_workers(world))
    learned: dict[str, dict] = {}
    if workers > 1:
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {i: pool.submit(_train_finetune, world_json, str(built.root), i, held_out) for i in pending}
                # meanwhile, here: what the models trained before learned (the workers check their own)
                learned.update(_scores(world, _model_dirs(built, skip=futures)))
                for index, future in futures.items():
                    stats, scores = future.result()
                    _log_finetune(log, world, index, stats)
                    learned.update(scores)
        except BrokenProcessPool:  # e.g. a calling script without a __main__ guard: train here instead
            log("worker processes could not start; training the remaining fine-tunes in this process")
    for index in pending:
        if not _complete(built.checkpoints[index - 1], world.finetunes[index - 1].model_dump(mode="json")):
            stats, scores = _train_finetune(world_json, str(built.root), index, held_out)
            _log_finetune(log, world, index, stats)
            learned.update(scores)
    summary = {name: json.loads((path / MODEL_META).read_text(encoding="utf-8"))["training"]
               for name, path in _model_dirs(built).items()}
    atomic_write_json(marker, {
        "recipe_hash": digest,
        "code": WORLD_CODE_VERSION,
        "threads": world.threads,
        "pretrain_threads": world.base_threads,
        "torch": importlib.metadata.version("torch"),
        "transformers": importlib.metadata.version("transformers"),
        "recipe": world.model_dump(mode="json"),
        "training": summary,
        "learned": _learned(world, built, log, learned),
    })
    return built


def _base_key(world: TrainedWorldConfig) -> dict:
    """Everything the base's weights depend on (not the fine-tunes): worlds that agree on it train the
    same base, bit for bit (seeded, deterministic kernels, fixed threads)."""
    return {"code": WORLD_CODE_VERSION, "seed": world.seed, "threads": world.base_threads,
            "model": world.model.model_dump(mode="json"), "pretrain": world.pretrain.model_dump(mode="json"),
            "held_out": world.tasks.model_dump(mode="json"), "torch": importlib.metadata.version("torch")}


def _copy_identical_base(world: TrainedWorldConfig, built: TrainedWorld, base_stage: dict) -> Path | None:
    """Copy the base of a finished sibling world (runs/worlds/*/world.json) whose base key equals this
    world's, e.g. a world of other fine-tunes of the same base (configs/demo_homogeneous.yaml); None if none."""
    key = _base_key(world)
    for marker in sorted(built.root.parent.glob(f"*/{WORLD_FILE}")):
        if marker.parent == built.root:
            continue
        try:
            recorded = json.loads(marker.read_text(encoding="utf-8"))
            other = TrainedWorldConfig.model_validate(recorded["recipe"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if (recorded.get("code"), recorded.get("torch")) != (key["code"], key["torch"]) or _base_key(other) != key:
            continue
        source = marker.parent / "base"
        if not _complete(source, base_stage):
            continue
        with atomic_directory(built.base) as tmp:
            for path in sorted(source.iterdir()):
                if path.is_file():
                    shutil.copyfile(path, tmp / path.name)
        return marker.parent
    return None


def _scores(world: TrainedWorldConfig, models: dict[str, Path]) -> dict[str, dict]:
    """{model: {skill/convention/domain: correct, items, chance}}: accuracy of each of `models` on the
    held-out problems of each skill it was trained on, posed its own way (repro.worlds.skill_check)."""
    if not models:
        return {}
    with deterministic_torch(world.threads):
        report = check_world(world, models)
    return {model: {f"{s.skill}/{s.convention}/{s.domain}": {"correct": s.correct, "items": s.items,
                                                             "chance": round(s.chance, 4)} for s in scores}
            for model, scores in report.items()}


def _learned(world: TrainedWorldConfig, built: TrainedWorld, log, known: dict[str, dict] | None = None) -> dict:
    """What every model of the world really learned (`_scores`; those in `known` already checked), in
    model order, recorded in world.json and logged."""
    models = _model_dirs(built)
    known = known or {}
    checked = {**known, **_scores(world, {name: path for name, path in models.items() if name not in known})}
    out = {name: checked[name] for name in models}
    for model, scores in out.items():
        parts = []
        for key, score in scores.items():
            skill, convention, domain = key.split("/")
            parts.append(f"{skill}{'' if convention == 'standard' else '/' + convention}"
                         f"{'' if domain == 'plain' else '@' + domain} {score['correct']}/{score['items']}")
        log(f"{world.name} {model} learned: " + ", ".join(parts))
    return out


def _log_finetune(log, world: TrainedWorldConfig, index: int, stats: dict) -> None:
    log(f"{world.name} ft-{index:02d} {world.finetunes[index - 1].name}: loss {stats['first_loss']} -> "
        f"{stats['final_loss']}, {stats['seconds']} s")
