"""Session fixture `slurm_cluster`: a real single-node SLURM cluster (tools/local_slurm.py) for tests
marked `slurm` (run them with `nox -s slurm`; needs root and the apt packages slurmctld slurmd
slurm-client munge, which .ci/run installs).

Use it from any test module with `pytest_plugins = ["slurm_cluster_fixture"]` (or once, in
tests/conftest.py). The fixture yields `local_slurm.LocalSlurmCluster` (`.conf_path`, `.env`,
`.command(*argv)`) and exports SLURM_CONF for the whole session, so sbatch/submitit find the cluster.
The cluster is started lazily, only when a selected test asks for it, and stopped at session end.
(PYTEST_DONT_REWRITE: test modules may import this module before pytest registers it as a plugin.)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

LOCAL_SLURM_PATH = Path(__file__).resolve().parents[1] / "tools" / "local_slurm.py"


def _load_local_slurm():
    """tools/ is not a package: load tools/local_slurm.py by path, once, as module `local_slurm`."""
    if "local_slurm" in sys.modules:
        return sys.modules["local_slurm"]
    spec = importlib.util.spec_from_file_location("local_slurm", LOCAL_SLURM_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_slurm"] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


local_slurm = _load_local_slurm()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running local SLURM cluster shared by the session; SLURM_CONF points at it while it runs."""
    with local_slurm.local_slurm_cluster(tmp_path_factory.mktemp("slurm-cluster")) as cluster:
        yield cluster
