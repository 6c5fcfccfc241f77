"""Streaming tensor I/O of the merge engine: memory-mapped safetensors inputs, streamed safetensors output.

Inputs: `MappedCheckpoint` memory-maps every *.safetensors file of a model directory and hands out
zero-copy tensor views by name (the bytes are read from disk when first touched). `release(name)` drops
that tensor's pages from this process again (madvise DONTNEED; they stay in the page cache), so the
resident set holds the tensors in flight, never whole shards or models. `prefetch(name)` asks the kernel
to read a tensor ahead (madvise WILLNEED) while the previous one is being merged.

Output: `ShardWriter` lays out every output tensor up front (the names, dtypes and shapes are known
before the first tensor is merged), writes each shard's header, then each tensor's bytes at its offset as
soon as it is computed: nothing is buffered. Shard names and the index file are those of mergekit and
Hugging Face (`model.safetensors`, or `model-0000i-of-0000N.safetensors` + `model.safetensors.index.json`).
The writer works inside a temporary directory that the engine renames into place.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from repro.errors import MergeError
from repro.merge.tensor_checks import TensorInfo

ST_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
ST_NAMES = {dtype: name for name, dtype in ST_DTYPES.items()}
ITEMSIZE = {dtype: torch.empty((), dtype=dtype).element_size() for dtype in ST_DTYPES.values()}
PAGE = mmap.PAGESIZE


def _numel(shape: Sequence[int]) -> int:
    total = 1
    for dim in shape:
        total *= int(dim)
    return total


class MappedCheckpoint:
    """Zero-copy, read-only tensor views of one model directory's safetensors files."""

    def __init__(self, model_dir: Path, index: dict[str, TensorInfo]):
        self.model_dir = Path(model_dir)
        self.index = index
        self._maps: dict[Path, mmap.mmap] = {}
        self._sizes: dict[Path, int] = {}

    def _map(self, file: Path) -> mmap.mmap:
        mapped = self._maps.get(file)
        if mapped is None:
            with open(file, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                # A private mapping: torch wants a writable buffer; nothing is ever written to it.
                mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
            self._maps[file], self._sizes[file] = mapped, size
        return mapped

    def tensor(self, name: str) -> torch.Tensor:
        """The tensor `name` as stored (dtype and shape of the file), a view of the mapped file."""
        info = self.index[name]
        dtype = ST_DTYPES.get(info.dtype)
        if dtype is None:
            raise MergeError(f"tensor {name} has unsupported dtype {info.dtype}", path=str(self.model_dir))
        mapped = self._map(info.file)
        itemsize = ITEMSIZE[dtype]
        count = _numel(info.shape)
        if info.end - info.start != count * itemsize or info.start < 0 or info.end > self._sizes[info.file]:
            raise MergeError(
                f"tensor {name} has data offsets that do not match its shape {list(info.shape)} and dtype "
                f"{info.dtype} (or lie outside the file); the file is damaged, re-download the checkpoint",
                path=str(info.file),
            )
        if count == 0:
            return torch.empty(info.shape, dtype=dtype)
        raw = torch.frombuffer(mapped, dtype=torch.uint8, count=count * itemsize, offset=info.start)
        if info.start % itemsize:  # unaligned data: one aligned copy
            raw = raw.clone()
        return raw.view(dtype).view(info.shape)

    def _advise(self, name: str, advice: int) -> None:
        info = self.index.get(name)
        mapped = self._maps.get(info.file) if info is not None else None
        if mapped is None or info.end <= info.start:
            return
        start = info.start - info.start % PAGE
        try:
            mapped.madvise(advice, start, info.end - start)
        except (OSError, ValueError):
            pass  # advice only

    def prefetch(self, name: str) -> None:
        if name in self.index:
            self._map(self.index[name].file)
            self._advise(name, mmap.MADV_WILLNEED)

    def release_elements(self, name: str, end: int) -> None:
        """Drop the pages holding elements [0, end) of `name` (whole pages only): a chunked merge that
        is past them keeps only the pages in flight resident."""
        info = self.index.get(name)
        mapped = self._maps.get(info.file) if info is not None else None
        if mapped is None:
            return
        first = info.start - info.start % PAGE
        last = min(info.end, info.start + end * ITEMSIZE[ST_DTYPES[info.dtype]])
        last -= last % PAGE
        if last > first:
            try:
                mapped.madvise(mmap.MADV_DONTNEED, first, last - first)
            except (OSError, ValueError):
                pass

    def release(self, name: str) -> None:
        """Drop the pages of `name` from this process (views of it must no longer be used)."""
        self._advise(name, mmap.MADV_DONTNEED)

    def close(self) -> None:
        for mapped in self._maps.values():
            try:
                mapped.close()
            except BufferError:  # a view is still alive; the mapping closes when it is collected
                pass
        self._maps.clear()


def shard_layout(
    entries: Sequence[tuple[str, torch.dtype, tuple[int, ...]]], shard_bytes: int
) -> list[list[tuple[str, torch.dtype, tuple[int, ...]]]]:
    """Split tensors (in order) into shards of at most `shard_bytes` (a larger tensor gets its own)."""
    shards: list[list] = [[]]
    size = 0
    for name, dtype, shape in entries:
        nbytes = _numel(shape) * ITEMSIZE[dtype]
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, dtype, tuple(shape)))
        size += nbytes
    return shards


class ShardWriter:
    """Writes a safetensors model (one or more shards) tensor by tensor, at precomputed offsets."""

    def __init__(self, out_dir: Path, entries: Sequence[tuple[str, torch.dtype, tuple[int, ...]]], shard_bytes: int):
        self.out_dir = Path(out_dir)
        shards = shard_layout(entries, shard_bytes)
        total = len(shards)
        self.files: list[Path] = []
        self._fds: list[int] = []
        self._where: dict[str, tuple[int, int, torch.dtype, tuple[int, ...]]] = {}
        self._pending: set[str] = set()
        self.total_size = 0
        try:
            for number, shard in enumerate(shards, start=1):
                name = "model.safetensors" if total == 1 else f"model-{number:05d}-of-{total:05d}.safetensors"
                header, offset = {}, 0
                for tensor_name, dtype, shape in shard:
                    nbytes = _numel(shape) * ITEMSIZE[dtype]
                    header[tensor_name] = {
                        "dtype": ST_NAMES[dtype],
                        "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes],
                    }
                    offset += nbytes
                header["__metadata__"] = {"format": "pt"}
                blob = json.dumps(header, separators=(",", ":")).encode()
                blob += b" " * (-len(blob) % 8)
                data_start = 8 + len(blob)
                path = self.out_dir / name
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                self._fds.append(fd)
                self.files.append(path)
                _pwrite_all(fd, len(blob).to_bytes(8, "little") + blob, 0)
                os.ftruncate(fd, data_start + offset)
                for tensor_name, dtype, shape in shard:
                    begin = data_start + header[tensor_name]["data_offsets"][0]
                    self._where[tensor_name] = (number - 1, begin, dtype, shape)
                    self._pending.add(tensor_name)
                self.total_size += offset
        except BaseException:
            self.abort()
            raise

    def write(self, name: str, tensor: torch.Tensor) -> None:
        shard, offset, dtype, shape = self._where[name]
        if tensor.dtype != dtype or tuple(tensor.shape) != shape:
            raise RuntimeError(f"{name}: expected {dtype} {shape}, got {tensor.dtype} {tuple(tensor.shape)}")
        data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
        if data.numel():
            _pwrite_all(self._fds[shard], memoryview(data.numpy()), offset)
        self._pending.discard(name)

    def close(self) -> None:
        """Finish: every tensor must have been written; writes the index file for several shards."""
        if self._pending:
            raise RuntimeError(f"{len(self._pending)} tensors were never written, e.g. {sorted(self._pending)[0]}")
        self.abort()
        if len(self.files) > 1:
            weight_map = {name: self.files[where[0]].name for name, where in self._where.items()}
            index = {"metadata": {"total_size": self.total_size}, "weight_map": weight_map}
            (self.out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")

    def abort(self) -> None:
        """Close every file (the engine removes the temporary directory on failure)."""
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []


def _pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
