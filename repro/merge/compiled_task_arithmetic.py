"""Task Arithmetic over bfloat16 checkpoints in one compiled pass (numba, free of the GIL).

`task_arithmetic_bf16(base, addresses, out, to_bf16, norms, first, last, chunk, weight, divisor, lam)`
merges the flat elements [first, last) of a bf16 base (uint16 view) and the bf16 inputs at `addresses`
(data pointers of contiguous tensors as long as the base) into `out` (a uint16 view of bf16 where
`to_bf16`, else float32), and stores per chunk of `chunk` elements ||stored - base||^2 in
`norms[chunk index]`.

Per element it computes what `repro.merge.arithmetic.combine_task_vectors` computes with torch (mergekit's
arithmetic), in the same order, so the stored bits are the same (tested against it):
    acc = 0; for each input i in order: acc += (float32(x_i) - float32(b)) [* weight]
    v = acc [/ divisor] [* lam]; out = round_to_nearest_even_bf16(v + float32(b)) (or v + b in float32)
bf16 -> float32 is exact (the 16 bits shifted up); float32 -> bf16 is torch's rounding (NaN -> 0x7FC0).
The squared norm differs from the torch path's in the last bits only (float64 squares summed in 16 lanes,
not torch's order); it is the same whatever the number of threads, since chunks are summed in order by
the caller. Inputs are read in groups of four per pass over a chunk (the sum's order unchanged).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from repro.merge.compiled_kernels import cached_njit

LANES = 16  # partial sums of the squared norm (vectorizable, in a fixed order)


@intrinsic
def _pointer(typingctx, address):  # pragma: no cover - compiled
    """An int64 address as a void pointer (for numba.carray)."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


@intrinsic
def _as_float32(typingctx, bits):  # pragma: no cover - compiled
    """The float32 whose bits are the uint32 `bits`."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], cgutils.ir.FloatType())

    return types.float32(types.uint32), codegen


@intrinsic
def _float32_bits(typingctx, value):  # pragma: no cover - compiled
    """The bits of the float32 `value` as a uint32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], cgutils.ir.IntType(32))

    return types.uint32(types.float32), codegen


@cached_njit
def _bf16_to_float32(half):  # pragma: no cover - compiled
    return _as_float32(np.uint32(half) << 16)


@cached_njit
def _float32_to_bf16(value):  # pragma: no cover - compiled
    bits = _float32_bits(value)
    if (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):  # NaN
        return np.uint16(0x7FC0)
    return np.uint16((bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) >> 16)


@cached_njit
def _input(addresses, k, total, start, stop):  # pragma: no cover - compiled
    return numba.carray(_pointer(addresses[k]), (total,), np.uint16)[start:stop]


@cached_njit
def _sum_task_vectors(base, addresses, start, stop, weight, base32, acc):  # pragma: no cover - compiled
    """base32[:m] = float32(base[start:stop]); acc[:m] = sum over inputs, in order, of (x - b) [* w]."""
    m = stop - start
    total = base.size
    b16 = base[start:stop]
    for j in range(m):
        base32[j] = _bf16_to_float32(b16[j])
        acc[j] = np.float32(0.0)
    n = addresses.size
    k = 0
    if weight == np.float32(1.0):  # four inputs per pass over the chunk: the same additions in order
        while k + 4 <= n:
            x0 = _input(addresses, k, total, start, stop)
            x1 = _input(addresses, k + 1, total, start, stop)
            x2 = _input(addresses, k + 2, total, start, stop)
            x3 = _input(addresses, k + 3, total, start, stop)
            for j in range(m):
                b = base32[j]
                a = acc[j]
                a += _bf16_to_float32(x0[j]) - b
                a += _bf16_to_float32(x1[j]) - b
                a += _bf16_to_float32(x2[j]) - b
                a += _bf16_to_float32(x3[j]) - b
                acc[j] = a
            k += 4
    for i in range(k, n):
        x = _input(addresses, i, total, start, stop)
        if weight == np.float32(1.0):
            for j in range(m):
                acc[j] += _bf16_to_float32(x[j]) - base32[j]
        else:
            for j in range(m):
                acc[j] += (_bf16_to_float32(x[j]) - base32[j]) * weight


@cached_njit
def _squared_norm(diff, m, lanes):  # pragma: no cover - compiled
    """sum of float64(diff[j])^2 for j < m: 16 lanes, then the lanes in order, then the tail."""
    lanes[:] = 0.0
    full = m - m % LANES
    for j0 in range(0, full, LANES):
        for lane in range(LANES):
            d = np.float64(diff[j0 + lane])
            lanes[lane] += d * d
    total = 0.0
    for lane in range(LANES):
        total += lanes[lane]
    for j in range(full, m):
        d = np.float64(diff[j])
        total += d * d
    return total


@cached_njit
def task_arithmetic_bf16(base, addresses, out, to_bf16, norms, first, last, chunk, weight, divisor, lam):  # pragma: no cover
    w, dv, lm = np.float32(weight), np.float32(divisor), np.float32(lam)
    size = max(0, min(chunk, last - first))
    base32 = np.empty(size, np.float32)
    acc = np.empty(size, np.float32)
    lanes = np.empty(LANES, np.float64)
    for start in range(first, last, chunk):
        stop = min(last, start + chunk)
        m = stop - start
        _sum_task_vectors(base, addresses, start, stop, w, base32, acc)
        target = out[start:stop]
        for j in range(m):
            v = acc[j]
            if dv != np.float32(1.0):
                v = v / dv
            if lm != np.float32(1.0):
                v = v * lm
            merged = v + base32[j]
            if to_bf16:
                half = _float32_to_bf16(merged)
                target[j] = half
                acc[j] = _bf16_to_float32(half) - base32[j]  # the stored value's task vector
            else:
                target[j] = merged
                acc[j] = merged - base32[j]
        norms[start // chunk] = _squared_norm(acc, m, lanes)
