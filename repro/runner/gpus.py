"""Which GPU each local worker uses: one per worker, through its own CUDA_VISIBLE_DEVICES.

`repro run --workers N` starts N processes; without this, every one of them picks `cuda:0`. A worker is
given one GPU id (`--gpus 0,1,2,3`, or `all` = every visible GPU; by default, with several workers and a
config whose device is auto/cuda, the visible GPUs in turn) and sees only that GPU, as its `cuda:0`.
"""

from __future__ import annotations

import os
import re

from repro.errors import RunnerError

GPU_ID = re.compile(r"^(\d+|(GPU|MIG)-[0-9A-Za-z/-]+)$")


def device_count() -> int:
    """CUDA devices torch sees in this process (0 without CUDA)."""
    # torch: deferred so that importing this module does not load it
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def visible_gpus() -> list[str]:
    """The GPU ids this process may hand out: CUDA_VISIBLE_DEVICES's entries if set, else 0..count-1."""
    count = device_count()
    listed = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    if listed:
        return listed[:count] if count else []
    return [str(i) for i in range(count)]


def parse_gpus(spec: str) -> list[str]:
    if spec.strip() == "all":
        gpus = visible_gpus()
        if not gpus:
            raise RunnerError("--gpus all: no CUDA GPU is visible (check `nvidia-smi`; in a container, `--gpus all`)")
        return gpus
    gpus = [g.strip() for g in spec.split(",")]
    bad = [g for g in gpus if not GPU_ID.match(g)]
    if bad or len(set(gpus)) != len(gpus):
        raise RunnerError(f"--gpus {spec!r}: write distinct GPU indices or UUIDs separated by commas, e.g. 0,1,2,3, "
                          "or `all`")
    return gpus


def wants_gpu(loaded) -> bool:
    cfg = loaded.config
    return cfg.world is None and cfg.evaluation.device in ("auto", "cuda")


def worker_gpus(spec: str | None, workers: int | None, loaded) -> list[str] | None:
    """The GPU of each worker slot (worker i gets gpus[i % len(gpus)]), or None: leave the devices alone."""
    if spec is not None:
        gpus = parse_gpus(spec)
    elif (workers or 1) > 1 and wants_gpu(loaded):
        gpus = visible_gpus()
        if len(gpus) < 2:
            return None
    else:
        return None
    if workers is not None and workers < 1:
        raise RunnerError(f"--workers {workers}: at least 1")
    if workers is not None and workers > len(gpus):
        print(f"note: {workers} workers on {len(gpus)} GPU(s): some workers share a GPU")
    return gpus


def auto_workers(loaded) -> int:
    """`--workers auto`: one per visible GPU for a GPU config (at least 1); on CPU, as many as the CPUs
    this process may use hold workers of `evaluation.threads` threads each (torch's default of one
    thread per CPU: one worker)."""
    if wants_gpu(loaded) and visible_gpus():
        return len(visible_gpus())
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = loaded.config.evaluation.threads
    return max(1, cpus // threads) if threads else 1


def worker_environment(gpus: list[str] | None, index: int) -> dict[str, str]:
    """The environment variables worker `index` starts with."""
    if not gpus:
        return {}
    return {"CUDA_VISIBLE_DEVICES": gpus[index % len(gpus)]}
