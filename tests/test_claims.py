import json
import multiprocessing
import os
import time

from repro.runner.claims import ClaimBoard


def test_exclusive_claim_and_release(tmp_path):
    board = ClaimBoard(tmp_path, ttl_s=60)
    first = board.try_claim("job1", "a")
    assert first is not None
    assert board.try_claim("job1", "b") is None
    assert board.live_claims() == {"job1": "a"}
    first.release()
    assert board.live_claims() == {}
    second = board.try_claim("job1", "b")
    assert second is not None
    second.release()


def test_expired_claim_of_dead_worker_is_taken_over(tmp_path):
    board = ClaimBoard(tmp_path, ttl_s=0.5)
    path = board.path("job1")
    path.write_text(json.dumps({"owner": "dead"}))
    old = time.time() - 10
    os.utime(path, (old, old))
    claim = board.try_claim("job1", "alive")
    assert claim is not None
    assert json.loads(path.read_text())["owner"] == "alive"
    claim.release()


def test_heartbeat_keeps_a_live_claim(tmp_path):
    board = ClaimBoard(tmp_path, ttl_s=0.6, heartbeat_s=0.1)
    claim = board.try_claim("job1", "a")
    time.sleep(1.0)
    assert ClaimBoard(tmp_path, ttl_s=0.6).try_claim("job1", "b") is None
    claim.release()


def _contend(args):
    directory, worker = args
    board = ClaimBoard(directory, ttl_s=60)
    won = []
    for i in range(40):
        claim = board.try_claim(f"job{i}", worker)
        if claim is not None:
            won.append(i)  # keep the claim held: a finished job never becomes claimable again here
    return won


def test_concurrent_claimers_never_share_a_job(tmp_path):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_contend, [(str(tmp_path), f"w{i}") for i in range(4)])
    won = [i for r in results for i in r]
    assert sorted(won) == list(range(40))


def test_claim_of_a_killed_process_on_this_host_is_taken_at_once(tmp_path):
    import socket
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    board = ClaimBoard(tmp_path, ttl_s=3600)
    board.path("job1").parent.mkdir(parents=True, exist_ok=True)
    board.path("job1").write_text(json.dumps({"owner": f"{socket.gethostname()}:{proc.pid}:abc"}))
    claim = board.try_claim("job1", "new")
    assert claim is not None
    claim.release()
    # a live process's claim is respected
    board.path("job2").write_text(json.dumps({"owner": f"{socket.gethostname()}:{os.getpid()}:abc"}))
    assert board.try_claim("job2", "new") is None
