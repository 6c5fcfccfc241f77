"""A real single-node SLURM cluster on this machine, without systemd (for tests and CI).

    python tools/local_slurm.py start --state DIR     # prints `export SLURM_CONF=DIR/slurm.conf`
    python tools/local_slurm.py status --state DIR
    python tools/local_slurm.py stop --state DIR

or from Python:

    with local_slurm_cluster(state_dir) as cluster:   # SLURM_CONF is exported inside the block
        subprocess.run(["sbatch", "--wrap", "echo hi"], env=cluster.env)

Needs root and the Debian packages `slurmctld slurmd slurm-client munge`. It runs munged (as the munge user,
with its own key and socket), `slurmctld -D -i` and `slurmd -D -N localhost`, all in the foreground of their
own sessions, with a generated slurm.conf (free loopback ports, so two clusters can coexist). Every daemon
PID (with its start time, so a reused PID is never killed) is recorded in DIR/daemons.json; `stop` signals
exactly those processes and waits for them. Logs are in DIR/log/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template

REQUIRED_PROGRAMS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "scancel")
APT_HINT = "install them with: apt-get update && apt-get install -y slurmctld slurmd slurm-client munge"
NODE_NAME = "localhost"
DAEMONS_FILE = "daemons.json"
MUNGE_LINK = "munge"  # DIR/munge -> the munge runtime directory (outside DIR, see _make_munge_dir)

SLURM_CONF_TEMPLATE = Path(__file__).with_name("slurm.conf.template")  # $placeholders, see write_slurm_conf


class LocalSlurmError(RuntimeError):
    """The local cluster could not be started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class LocalSlurmCluster:
    """A running local cluster: pass `env` to sbatch/squeue/scancel subprocesses (or rely on SLURM_CONF)."""

    state_dir: Path
    conf_path: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf_path)}

    def command(self, *args: str, timeout: float = 30) -> str:
        """Run a SLURM client command against this cluster and return its stdout (raises on failure)."""
        done = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise LocalSlurmError(f"`{' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout


def _free_loopback_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (all probes are held open together, so no repeats)."""
    with contextlib.ExitStack() as stack:
        probes = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)
        ]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise LocalSlurmError("cannot read MemTotal from /proc/meminfo")


def _process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if the process is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise LocalSlurmError("the local SLURM cluster needs root (CI runs as root); run it as root")
    missing = [name for name in REQUIRED_PROGRAMS if shutil.which(name) is None]
    if missing:
        raise LocalSlurmError(f"missing SLURM/munge programs {', '.join(missing)}; {APT_HINT}")
    try:
        pwd.getpwnam("munge")
    except KeyError:
        raise LocalSlurmError(
            f"there is no `munge` user (the munge package creates it); {APT_HINT}"
        ) from None


def _read_daemons(state_dir: Path) -> list[dict]:
    path = state_dir / DAEMONS_FILE
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LocalSlurmError(f"{path} is corrupt ({exc}); kill the daemons by hand and delete it") from exc


def _record_daemons(state_dir: Path, daemons: list[dict]) -> None:
    path = state_dir / DAEMONS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(daemons, indent=2))
    os.replace(tmp, path)


def _log_tails(state_dir: Path, lines: int = 25) -> str:
    parts = []
    for log in sorted((state_dir / "log").glob("*")) + sorted((state_dir / MUNGE_LINK).glob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log} (last {len(text)} lines)\n" + "\n".join(text))
    return "\n".join(parts) or "(no daemon logs were written)"


def _make_munge_dir(state_dir: Path) -> Path:
    """munged (running as `munge`) refuses unsafe directories and sockets need a short path, so its key,
    socket and log live in a fresh /tmp/repro-munge-* dir owned by munge; DIR/munge links to it."""
    link = state_dir / MUNGE_LINK
    if link.is_symlink():
        shutil.rmtree(link.resolve(), ignore_errors=True)
        link.unlink()
    munge_dir = Path(tempfile.mkdtemp(prefix="repro-munge-", dir="/tmp"))
    shutil.chown(munge_dir, "munge", "munge")
    munge_dir.chmod(0o755)
    link.symlink_to(munge_dir)
    key = munge_dir / "munge.key"
    created = subprocess.run(
        ["mungekey", "--create", "--keyfile", str(key)],
        user="munge",
        group="munge",
        capture_output=True,
        text=True,
    )
    if created.returncode != 0 or not key.exists():
        raise LocalSlurmError(f"mungekey failed to create {key}: {created.stderr.strip()}")
    key.chmod(0o600)
    return munge_dir


def _spawn(state_dir: Path, daemons: list[dict], name: str, argv: list[str], **popen_kwargs) -> None:
    out = open(state_dir / "log" / f"{name}.out", "ab")
    with out:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen_kwargs,
        )
    time.sleep(0.05)
    daemons.append({"name": name, "pid": process.pid, "start_time": _process_start_time(process.pid)})
    _record_daemons(state_dir, daemons)


def _wait_for(what: str, ready, state_dir: Path, daemons: list[dict], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        dead = [d["name"] for d in daemons if _process_start_time(d["pid"]) != d["start_time"]]
        if dead:
            raise LocalSlurmError(
                f"{', '.join(dead)} exited while waiting for {what}\n{_log_tails(state_dir)}"
            )
        time.sleep(0.5)
    raise LocalSlurmError(f"timed out after {timeout:.0f}s waiting for {what}\n{_log_tails(state_dir)}")


def _munge_works(munge_socket: Path) -> bool:
    if not munge_socket.exists():
        return False
    encode = subprocess.run(["munge", "-n", "-S", str(munge_socket)], capture_output=True)
    if encode.returncode != 0:
        return False
    decode = subprocess.run(["unmunge", "-S", str(munge_socket)], input=encode.stdout, capture_output=True)
    return decode.returncode == 0


def _node_state(conf_path: Path) -> str:
    done = subprocess.run(
        ["sinfo", "--noheader", "--Node", "--format=%t"],
        env={**os.environ, "SLURM_CONF": str(conf_path)},
        capture_output=True,
        text=True,
        timeout=10,
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def write_slurm_conf(state_dir: Path, munge_socket: Path) -> Path:
    """Write DIR/slurm.conf for one node `localhost` (all CPUs, ~90% of memory) on free loopback ports."""
    cpus = os.cpu_count() or 1
    real_memory = max(256, int(_memory_mb() * 0.9))
    ctld_port, slurmd_port = _free_loopback_ports(2)
    conf = Template(SLURM_CONF_TEMPLATE.read_text()).substitute(
        ctld_port=ctld_port,
        slurmd_port=slurmd_port,
        munge_socket=munge_socket,
        state_dir=state_dir,
        node=NODE_NAME,
        cpus=cpus,
        real_memory=real_memory,
        mem_per_cpu=max(64, real_memory // cpus // 2),
    )
    conf_path = state_dir / "slurm.conf"
    conf_path.write_text(conf)
    return conf_path


def start_cluster(state_dir: Path | str, timeout: float = 90) -> LocalSlurmCluster:
    """Start munged, slurmctld and slurmd for DIR and wait until the node is idle.

    On failure every daemon already started is stopped and LocalSlurmError carries the daemon logs.
    """
    _check_prerequisites()
    state_dir = Path(state_dir).resolve()
    if any(_process_start_time(d["pid"]) == d["start_time"] for d in _read_daemons(state_dir)):
        raise LocalSlurmError(f"a cluster is already running for {state_dir}; stop it first (stop --state)")
    for sub in ("log", "run", "ctld-state", "slurmd-spool"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    daemons: list[dict] = []
    _record_daemons(state_dir, daemons)
    try:
        munge_dir = _make_munge_dir(state_dir)
        munge_socket = munge_dir / "munge.socket.2"
        conf_path = write_slurm_conf(state_dir, munge_socket)
        _spawn(
            state_dir,
            daemons,
            "munged",
            [
                "munged",
                "--foreground",
                f"--socket={munge_socket}",
                f"--key-file={munge_dir / 'munge.key'}",
                f"--log-file={munge_dir / 'munged.log'}",
                f"--pid-file={munge_dir / 'munged.pid'}",
                f"--seed-file={munge_dir / 'munged.seed'}",
            ],
            user="munge",
            group="munge",
            cwd=munge_dir,
        )
        _wait_for("munged to answer", lambda: _munge_works(munge_socket), state_dir, daemons, timeout=30)
        daemon_env = {**os.environ, "SLURM_CONF": str(conf_path)}
        _spawn(
            state_dir,
            daemons,
            "slurmctld",
            ["slurmctld", "-D", "-i", "-f", str(conf_path)],
            env=daemon_env,
            cwd=state_dir,
        )
        _spawn(
            state_dir,
            daemons,
            "slurmd",
            ["slurmd", "-D", "-N", NODE_NAME, "-f", str(conf_path)],
            env=daemon_env,
            cwd=state_dir,
        )
        _wait_for(
            "sinfo to show node localhost idle",
            lambda: _node_state(conf_path) == "idle",
            state_dir,
            daemons,
            timeout=timeout,
        )
    except BaseException:
        stop_cluster(state_dir)
        raise
    return LocalSlurmCluster(state_dir=state_dir, conf_path=conf_path)


def stop_cluster(state_dir: Path | str, timeout: float = 30) -> list[int]:
    """Cancel the cluster's jobs, then SIGTERM (later SIGKILL) exactly the recorded daemons and wait for them.

    Returns the PIDs that were signalled. Processes that are gone, or whose PID was reused, are skipped.
    """
    state_dir = Path(state_dir).resolve()
    daemons = _read_daemons(state_dir)
    alive = [
        d for d in daemons if d["start_time"] is not None and _process_start_time(d["pid"]) == d["start_time"]
    ]
    conf_path = state_dir / "slurm.conf"
    if conf_path.exists() and any(d["name"] == "slurmctld" for d in alive):
        _cancel_all_jobs(conf_path, timeout=20)
    # Reverse start order: slurmd, slurmctld, then munged (which the other two need to shut down cleanly).
    for daemon in reversed(alive):
        _terminate(daemon, timeout)
    still_running = [d for d in alive if _process_start_time(d["pid"]) == d["start_time"]]
    if still_running:
        raise LocalSlurmError(f"could not stop {still_running}; kill them by hand")
    _record_daemons(state_dir, [])
    link = state_dir / MUNGE_LINK
    if link.is_symlink():
        shutil.rmtree(link.resolve(), ignore_errors=True)
        link.unlink()
    return [d["pid"] for d in alive]


def _cancel_all_jobs(conf_path: Path, timeout: float) -> None:
    """Cancel every job of this cluster and wait (bounded) until squeue lists none, so no job outlives it."""
    env = {**os.environ, "SLURM_CONF": str(conf_path)}

    def queued() -> list[str]:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            listed = subprocess.run(
                ["squeue", "--noheader", "--format=%A"], env=env, capture_output=True, text=True, timeout=10
            )
            return listed.stdout.split() if listed.returncode == 0 else []
        return []

    deadline = time.monotonic() + timeout
    while (job_ids := queued()) and time.monotonic() < deadline:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["scancel", "--quiet", *job_ids], env=env, capture_output=True, timeout=10)
        time.sleep(0.5)


def _terminate(daemon: dict, timeout: float) -> None:
    pid = daemon["pid"]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child (context-manager use)
            if _process_start_time(pid) != daemon["start_time"]:
                return
            time.sleep(0.1)


@contextlib.contextmanager
def local_slurm_cluster(state_dir: Path | str, timeout: float = 90) -> Iterator[LocalSlurmCluster]:
    """Start the cluster, export SLURM_CONF for the block, then stop every daemon and restore SLURM_CONF."""
    cluster = start_cluster(state_dir, timeout=timeout)
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf_path)
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        stop_cluster(cluster.state_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local_slurm.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument(
        "--state", required=True, type=Path, help="directory for config, state, spool and logs"
    )
    parser.add_argument("--timeout", type=float, default=90, help="seconds to wait for the node to be idle")
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            cluster = start_cluster(args.state, timeout=args.timeout)
            print(f"export SLURM_CONF={cluster.conf_path}")
        elif args.action == "stop":
            stopped = stop_cluster(args.state)
            print(f"stopped {len(stopped)} daemon(s): {' '.join(map(str, stopped)) or '-'}")
        else:
            daemons = _read_daemons(args.state.resolve())
            for daemon in daemons:
                running = _process_start_time(daemon["pid"]) == daemon["start_time"]
                print(f"{daemon['name']:<10} pid {daemon['pid']:<8} {'running' if running else 'gone'}")
            if not daemons:
                print("no daemons recorded")
    except LocalSlurmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
