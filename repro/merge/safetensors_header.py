"""A strict reader of safetensors headers: checked before any file is handed to safetensors or mergekit.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON mapping tensor names to
{dtype, shape, data_offsets: [begin, end]} (offsets into the data that follows), then the data. A file
written by a stranger can lie in every part: a truncated file, a header length of terabytes, offsets
past the end of the file, two tensors sharing bytes, a dtype no merge method can use, a shape whose
size disagrees with its byte range. `read_header` checks all of it from the header alone (no tensor
data is read) and raises one MergeError naming the file and the tensor.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from repro.errors import MergeError

MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
MERGEABLE_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
FIX = "re-download the checkpoint (repro download --verify) or remove it from the merge"


@dataclass(frozen=True)
class HeaderEntry:
    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte range within the data section (as written in the header)
    end: int
    data_start: int = 0  # where the data section starts in the file (8 + header length)

    @property
    def file_range(self) -> tuple[int, int]:
        """Absolute byte range of the tensor's data in the file."""
        return self.data_start + self.begin, self.data_start + self.end


def _fail(file: Path, what: str) -> MergeError:
    return MergeError(f"{what}; {FIX}", path=str(file))


def _no_duplicate_keys(pairs: list) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"tensor {key} is listed twice in the header")
        out[key] = value
    return out


def read_header(file: str | os.PathLike) -> dict[str, HeaderEntry]:
    """Name -> (dtype, shape, byte range) of every tensor of one safetensors file, all of it validated."""
    file = Path(file)
    try:
        with open(file, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < 8:
                raise _fail(file, f"truncated safetensors file: {size} bytes, too short for the 8-byte header length")
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > MAX_HEADER_BYTES:
                raise _fail(file, f"safetensors header claims {length} bytes (limit {MAX_HEADER_BYTES}); the file "
                                  "is corrupt or hostile")
            if 8 + length > size:
                raise _fail(file, f"truncated safetensors file: the header claims {length} bytes but only "
                                  f"{size - 8} follow")
            raw = handle.read(length)
    except OSError as exc:
        raise _fail(file, f"cannot read the file ({exc.strerror or exc})") from exc
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _fail(file, f"the safetensors header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise _fail(file, "the safetensors header is not a JSON object")
    data_bytes = size - 8 - length
    entries = {}
    for name, meta in header.items():
        if name == "__metadata__":
            if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
                raise _fail(file, "the safetensors __metadata__ is not a mapping of strings")
            continue
        entries[name] = _entry(file, name, meta, data_bytes, 8 + length)
    _check_overlaps(file, entries)
    return entries


def _entry(file: Path, name: str, meta: object, data_bytes: int, data_start: int) -> HeaderEntry:
    where = f"tensor {name}"
    if not isinstance(meta, dict) or set(meta) != {"dtype", "shape", "data_offsets"}:
        raise _fail(file, f"{where}: the header entry must have exactly dtype, shape and data_offsets")
    dtype, shape, offsets = meta["dtype"], meta["shape"], meta["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise _fail(file, f"{where}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise _fail(file, f"{where}: shape {shape!r} is not a list of non-negative integers")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise _fail(file, f"{where}: data_offsets {offsets!r} are not [begin, end] with 0 <= begin <= end")
    begin, end = offsets
    if end > data_bytes:
        raise _fail(file, f"{where}: data_offsets end at byte {end} but the file holds only {data_bytes} data "
                          "bytes (truncated file or offsets past the end)")
    needed = math.prod(shape) * DTYPE_BYTES[dtype]
    if end - begin != needed:
        raise _fail(file, f"{where}: data_offsets span {end - begin} bytes but a {dtype} tensor of shape "
                          f"{shape} needs {needed}")
    return HeaderEntry(dtype, tuple(shape), begin, end, data_start)


def _check_overlaps(file: Path, entries: dict[str, HeaderEntry]) -> None:
    previous_name, previous_end = None, 0
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.end == entry.begin:
            continue  # an empty tensor occupies no bytes
        if entry.begin < previous_end:
            raise _fail(file, f"tensor {name}: its bytes {entry.begin}..{entry.end} overlap tensor "
                              f"{previous_name} (..{previous_end}); a valid file never shares bytes")
        previous_name, previous_end = name, entry.end
