"""Is the host's NVIDIA driver new enough for this torch's CUDA build? (`repro preflight`, `make gpu-check`)

A CUDA x.y build of torch runs on any driver of its major version's minimum or newer (CUDA minor version
compatibility); an older driver hides the GPU from torch altogether, which looks like "no GPU". The driver
version is read from `nvidia-smi`; without nvidia-smi (no NVIDIA GPU, or a container started without
`--gpus`) there is nothing to check.
"""

from __future__ import annotations

import shutil
import subprocess

# CUDA major version of the torch build -> minimum Linux driver (NVIDIA's CUDA compatibility tables).
MIN_DRIVER = {11: (450, 80), 12: (525, 60), 13: (580, 0)}


def driver_version() -> str | None:
    """The driver version nvidia-smi reports (e.g. "550.54.15"), or None without nvidia-smi or a GPU."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return lines[0] if out.returncode == 0 and lines else None


def _numbers(version: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return None


def required_driver(cuda: str | None) -> tuple[int, int] | None:
    """The minimum driver for a torch built for CUDA `cuda` ("13.0"), or None (CPU build, unknown CUDA)."""
    if not cuda:
        return None
    numbers = _numbers(cuda)
    return MIN_DRIVER.get(numbers[0]) if numbers else None


def driver_problem(cuda: str | None, version: str | None = None) -> str | None:
    """One line naming the way out when the host driver is too old for a torch built for CUDA `cuda`."""
    need = required_driver(cuda)
    if need is None:
        return None
    version = version if version is not None else driver_version()
    have = _numbers(version) if version else None
    if have is None or have >= need:
        return None
    wanted = ".".join(str(n) for n in need) if need[1] else str(need[0])
    return (f"NVIDIA driver {version} is too old for this torch (built for CUDA {cuda}, which needs driver >= "
            f"{wanted}): update the driver, or run from the host venv with torch's CUDA 12.6 build (driver >= 525): "
            "`make setup` then `.venv/bin/pip install torch==<the constraints.txt version> --index-url "
            "https://download.pytorch.org/whl/cu126` (docs/container.md, 'Older drivers')")
