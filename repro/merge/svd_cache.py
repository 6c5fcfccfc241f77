"""A cache of per-checkpoint SVD factors, so TSV-M decomposes each (checkpoint, tensor) once.

TSV-M needs the top floor(r/T) singular triplets of every task vector delta_i = W_i - W_0. They depend
only on the checkpoint, its base and the tensor, not on which other checkpoints share the subset, so
across the paper's subset grid the same decompositions recur many times. The cache keys an entry by
(content key of the checkpoint, content key of the base, tensor name, device type) and stores the
leading triplets in float32; a lookup asking for at most the stored rank slices them, which gives
exactly the bits a fresh decomposition would give (the fresh path computes the same full reduced SVD
and slices it).

Entries live in memory (least-recently-used, bounded by `max_memory_bytes`) and, if `directory` is
given, also as safetensors files there, so separate processes of one experiment share them.
A checkpoint's content key is the SHA-256 of its weight files (computed once per cache, memoized by
path, size and mtime) unless the caller registers a known revision with `register_checkpoint`.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from repro.atomic_io import atomic_write_bytes

if TYPE_CHECKING:
    import torch

Factors = tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]  # U[:, :k], S[:k], Vh[:k, :]


@dataclass(frozen=True)
class ContentKey:
    """The id the engine gives a merge input (mergekit `TensorEntry.id`) when it merges with a cache: the
    input's position (ids must be distinct even for two identical copies) and its content key
    (`SvdCache.checkpoint_key`). Methods key cached work by `key`, never by a file path."""

    position: int
    key: str


@dataclass
class SvdCacheStats:
    computed: int = 0  # decompositions actually run
    memory_hits: int = 0
    disk_hits: int = 0

    @property
    def hits(self) -> int:
        return self.memory_hits + self.disk_hits


def weight_files(model_dir: Path) -> list[Path]:
    files = sorted(Path(model_dir).glob("*.safetensors"))
    return files or sorted(Path(model_dir).glob("*.bin"))


class SvdCache:
    """Leading SVD factors of task vectors, shared across merges in (and, with a directory, across)
    processes. Safe to reuse for any number of merges; not thread-safe."""

    def __init__(self, directory: str | os.PathLike | None = None, max_memory_bytes: int = 2 << 30):
        self.directory = Path(directory) if directory is not None else None
        self.max_memory_bytes = int(max_memory_bytes)
        self.stats = SvdCacheStats()
        self._memory: OrderedDict[str, Factors] = OrderedDict()
        self._memory_bytes = 0
        self._registered: dict[str, str] = {}
        self._hashed: dict[tuple[str, tuple], str] = {}

    # -- checkpoint identity -------------------------------------------------------------------
    def register_checkpoint(self, model_dir: str | os.PathLike, content_key: str) -> None:
        """Declare the content key (e.g. the locked revision or sha256) of a checkpoint directory."""
        self._registered[str(Path(model_dir).resolve())] = str(content_key)

    def checkpoint_key(self, model_dir: str | os.PathLike) -> str:
        path = Path(model_dir).resolve()
        if str(path) in self._registered:
            return self._registered[str(path)]
        files = weight_files(path)
        stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
        memo = (str(path), stamp)
        if memo not in self._hashed:
            digest = hashlib.sha256()
            for file in files:
                digest.update(file.name.encode() + b"\0")
                with open(file, "rb") as handle:
                    while chunk := handle.read(1 << 24):
                        digest.update(chunk)
            self._hashed[memo] = digest.hexdigest()
        return self._hashed[memo]

    # -- factors ---------------------------------------------------------------------------------
    def leading_factors(
        self,
        checkpoint_key: str,
        base_key: str,
        tensor_name: str,
        rank: int,
        device: torch.device,
        compute: Callable[[], Factors],
    ) -> Factors:
        """The first `rank` singular triplets of a checkpoint's delta for `tensor_name`, by the content
        keys of the checkpoint and its base (what `checkpoint_key` gives; the engine passes them).

        `compute()` must return the full reduced SVD (U, S, Vh) of the float32 delta; it is called
        only on a miss. Stored: the first max(rank, min(r, r // 2)) triplets, enough for any merge
        of two or more models.
        """
        raw = f"{checkpoint_key}|{base_key}|{tensor_name}|{device.type}"
        key = hashlib.sha256(raw.encode()).hexdigest()
        factors = self._lookup(key, rank, device)
        if factors is None:
            u, s, vh = compute()
            self.stats.computed += 1
            keep = max(rank, s.shape[0] // 2)
            stored = (u[:, :keep].contiguous(), s[:keep].contiguous(), vh[:keep, :].contiguous())
            self._store(key, stored)
            factors = stored
        u, s, vh = factors
        return u[:, :rank].to(device), s[:rank].to(device), vh[:rank, :].to(device)

    def _lookup(self, key: str, rank: int, device: torch.device) -> Factors | None:
        if key in self._memory and self._memory[key][1].shape[0] >= rank:
            self._memory.move_to_end(key)
            self.stats.memory_hits += 1
            return self._memory[key]
        if self.directory is not None:
            path = self.directory / key[:2] / f"{key}.safetensors"
            if path.exists():
                # torch: deferred so that importing this module does not load it
                from safetensors.torch import load_file

                loaded = load_file(str(path))
                factors = (loaded["u"], loaded["s"], loaded["vh"])
                if factors[1].shape[0] >= rank:
                    self.stats.disk_hits += 1
                    self._remember(key, factors)
                    return factors
        return None

    def _store(self, key: str, factors: Factors) -> None:
        self._remember(key, factors)
        if self.directory is not None:
            # torch: deferred so that importing this module does not load it
            from safetensors.torch import save

            u, s, vh = (t.detach().cpu() for t in factors)
            path = self.directory / key[:2] / f"{key}.safetensors"
            atomic_write_bytes(path, save({"u": u, "s": s, "vh": vh}))

    def _remember(self, key: str, factors: Factors) -> None:
        size = sum(t.numel() * t.element_size() for t in factors)
        if size > self.max_memory_bytes:
            return
        factors = tuple(t.detach().cpu() for t in factors)
        if key in self._memory:
            self._memory_bytes -= sum(t.numel() * t.element_size() for t in self._memory.pop(key))
        self._memory[key] = factors
        self._memory_bytes += size
        while self._memory_bytes > self.max_memory_bytes:
            _, evicted = self._memory.popitem(last=False)
            self._memory_bytes -= sum(t.numel() * t.element_size() for t in evicted)
