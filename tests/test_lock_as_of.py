"""`repro lock resolve --as-of DATE` against a hub-shaped fake with commit histories."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta, timezone

import huggingface_hub
import pytest
import yaml
from fake_hub import DEFAULT_COMMIT_DATE, FakeHubApi, http_error
from huggingface_hub import errors as hf_errors

from repro.cli import main
from repro.errors import HubError
from repro.facts.lockfile import Lockfile, load_lockfile
from repro.facts.lockfile_writer import dump_lockfile, render_lockfile
from repro.hub import resolve_lockfile, sha256_file
from repro.hub.history import parse_as_of

POOL = ["tiny/ft-1", "tiny/ft-2", "tiny/young"]
V1, V2, V3 = (datetime(2025, 1, 10, 8, 0, tzinfo=UTC), datetime(2025, 5, 1, 12, 0, tzinfo=UTC),
              datetime(2025, 10, 1, 9, 30, tzinfo=UTC))


@pytest.fixture(scope="module")
def hub(tmp_path_factory, tiny_llama_world):
    """root/<org>/<name>/ repos; tiny/ft-1 has three commits (different weights), tiny/young starts late."""
    root = tmp_path_factory.mktemp("hub-history")
    shutil.copytree(tiny_llama_world.base, root / "tiny/base")
    shutil.copytree(tiny_llama_world.checkpoints[1], root / "tiny/ft-2")
    shutil.copytree(tiny_llama_world.checkpoints[3], root / "tiny/young")
    snapshots = root / ".snapshots"
    folders = []
    for i, index in enumerate((0, 4, 5)):
        folder = snapshots / f"ft-1-v{i + 1}"
        shutil.copytree(tiny_llama_world.checkpoints[index], folder)
        folders.append(folder)
    return root, folders


def _api(hub) -> tuple[FakeHubApi, list[str]]:
    root, folders = hub
    api = FakeHubApi(root)
    shas = api.set_history("tiny/ft-1", list(zip((V1, V2, V3), folders, strict=True)))
    api.set_history("tiny/young", [(datetime(2025, 11, 20, tzinfo=UTC), root / "tiny/young")])
    return api, shas


def _lock(pool=POOL) -> Lockfile:
    ids = ["tiny/base", *pool]
    return Lockfile.model_validate(
        {
            "version": 1,
            "checkpoints": {r: {"revision": None, "gated": False, "files": []} for r in ids},
            "bases": {"tiny-llama": {"model": "tiny/base", "in_the_wild": list(pool), "homogeneous": {}}},
        }
    )


def _entry_text(text: str, repo_id: str) -> str:
    """The lines of one checkpoint entry in a rendered lockfile."""
    lines = text.splitlines()
    start = lines.index(f"  {repo_id}:")
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("    "))
    return "\n".join(lines[start:end])


def test_as_of_pins_the_last_commit_at_or_before_the_date_and_records_its_date(hub):
    api, shas = _api(hub)
    lock = resolve_lockfile(_lock(["tiny/ft-1", "tiny/ft-2"]), api, as_of=parse_as_of("2025-09-30"))
    ft1 = lock.entry("tiny/ft-1")
    assert ft1.revision == shas[1] and ft1.committed_at == "2025-05-01T12:00:00Z" and ft1.as_of == "2025-09-30"
    folder = hub[1][1]
    weights = next(f for f in ft1.files if f.path == "model.safetensors")
    assert weights.sha256 == sha256_file(folder / "model.safetensors")  # the files of that commit
    assert lock.entry("tiny/ft-2").committed_at == "2024-06-01T12:00:00Z"
    # the day is inclusive (end of day, UTC); a time with a zone is exact
    assert resolve_lockfile(_lock(["tiny/ft-1"]), api, as_of=parse_as_of("2025-05-01")).entry(
        "tiny/ft-1").revision == shas[1]
    just_before = parse_as_of("2025-05-01T13:59:59+02:00")  # 11:59:59 UTC
    assert resolve_lockfile(_lock(["tiny/ft-1"]), api, as_of=just_before).entry("tiny/ft-1").revision == shas[0]
    assert resolve_lockfile(_lock(["tiny/ft-1"]), api, as_of=parse_as_of("2030-01-01")).entry(
        "tiny/ft-1").revision == shas[2]


def test_without_as_of_the_newest_commit_is_pinned_with_its_date(hub):
    api, shas = _api(hub)
    lock = resolve_lockfile(_lock(["tiny/ft-1", "tiny/ft-2"]), api)
    ft1 = lock.entry("tiny/ft-1")
    assert ft1.revision == shas[2] and ft1.committed_at == "2025-10-01T09:30:00Z" and ft1.as_of is None
    # a kept (pinned) revision gets its own commit date, not the head's
    old = lock.with_entry(ft1.model_copy(update={"revision": shas[0], "committed_at": None}))
    again = resolve_lockfile(old, api, repo_ids=["tiny/ft-1"], force=True).entry("tiny/ft-1")
    assert again.revision == shas[0] and again.committed_at == "2025-01-10T08:00:00Z"


def test_entries_pinned_as_of_the_same_date_are_kept_and_another_date_repins(hub):
    api, shas = _api(hub)
    as_of = parse_as_of("2025-09-30")
    lock = resolve_lockfile(_lock(["tiny/ft-1", "tiny/ft-2"]), api, as_of=as_of)
    api.calls.clear()
    assert resolve_lockfile(lock, api, as_of=as_of) == lock and api.calls == []
    earlier = resolve_lockfile(lock, api, as_of=parse_as_of("2025-02-01"))
    assert earlier.entry("tiny/ft-1").revision == shas[0] and earlier.entry("tiny/ft-1").as_of == "2025-02-01"
    assert resolve_lockfile(lock, api) == lock  # no --as-of: pinned entries are kept


def test_lockfile_with_commit_dates_round_trips_byte_stable(tmp_path, hub):
    api, _ = _api(hub)
    lock = resolve_lockfile(_lock(["tiny/ft-1", "tiny/ft-2"]), api, as_of=parse_as_of("2025-09-30"))
    path = tmp_path / "checkpoints.lock"
    dump_lockfile(lock, path)
    text = path.read_text()
    assert 'committed_at: "2025-05-01T12:00:00Z"' in text and 'as_of: "2025-09-30"' in text
    assert load_lockfile(path) == lock and render_lockfile(load_lockfile(path)) == text
    bad = text.replace('as_of: "2025-09-30"', 'as_of: "last summer"', 1)
    path.write_text(bad)
    with pytest.raises(Exception, match=r"checkpoints\.tiny/base\.as_of: expected an ISO 8601 date"):
        load_lockfile(path)


def test_gone_gated_and_too_young_repos_are_named_and_nothing_else_changes(tmp_path, hub):
    api, shas = _api(hub)
    api.failures["tiny/ft-2"] = http_error(404, "tiny/ft-2", hf_errors.RepositoryNotFoundError)
    api.failures["tiny/base"] = http_error(403, "tiny/base", hf_errors.GatedRepoError)
    saved = []
    with pytest.raises(HubError) as info:
        resolve_lockfile(_lock(), api, as_of=parse_as_of("2025-09-30"), on_resolved=saved.append)
    message = str(info.value)
    assert "\n" not in message and message.startswith("3 checkpoints could not be pinned")
    assert "tiny/ft-2 was not found on the hub" in message
    assert "set HF_TOKEN and accept the license of tiny/base" in message
    assert "tiny/young has no commit at or before 2025-09-30 (its first commit is 2025-11-20T00:00:00Z)" in message
    assert "choose a later --as-of" in message
    progress = saved[-1]  # what the CLI writes: only tiny/ft-1 changed
    assert progress.entry("tiny/ft-1").revision == shas[1]
    before, after = render_lockfile(_lock()), render_lockfile(progress)
    for repo_id in ("tiny/base", "tiny/ft-2", "tiny/young"):
        assert _entry_text(after, repo_id) == _entry_text(before, repo_id)
    assert after.replace(_entry_text(after, "tiny/ft-1"), "") == before.replace(_entry_text(before, "tiny/ft-1"), "")


def test_network_failure_stops_at_once(hub):
    from fake_hub import connect_error

    api, _ = _api(hub)
    api.failures["tiny/ft-1"] = connect_error()
    with pytest.raises(HubError, match="cannot reach the Hugging Face hub"):
        resolve_lockfile(_lock(), api, as_of=parse_as_of("2025-09-30"))
    assert [c for c in api.calls if c[1] in ("tiny/ft-2", "tiny/young")] == []


@pytest.mark.parametrize(
    "text, message",
    [("30.09.2025", "is not a date: write YYYY-MM-DD"), ("2025-09-30T12:00:00", "has no time zone"),
     ("2025-02-30", "is not a date")],
)
def test_bad_as_of_values_are_one_clear_error(text, message):
    with pytest.raises(HubError, match=message):
        parse_as_of(text)


def test_as_of_times_are_normalized_to_utc():
    as_of = parse_as_of("2025-05-01T14:00:00+02:00")
    assert as_of.text == "2025-05-01T12:00:00Z" and as_of.cutoff == datetime(2025, 5, 1, 12, tzinfo=UTC)
    assert parse_as_of("2025-05-01").cutoff.astimezone(timezone(timedelta(hours=0))).hour == 23
    assert DEFAULT_COMMIT_DATE < parse_as_of("2025-01-01").cutoff


def _project(tmp_path, as_of: dict | None):
    """A project folder: checkpoints.lock and a lockfile config with (or without) checkpoints_as_of."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "configs").mkdir()
    shutil.copy(root / "configs/suites.yaml", tmp_path / "configs/suites.yaml")
    data = yaml.safe_load((root / "configs/paper.yaml").read_text())
    data.update(lockfile="checkpoints.lock", bases=["tiny-llama"], models_dir="models")
    data["merge"]["sizes"] = [2]
    data.pop("checkpoints_as_of", None)
    if as_of is not None:
        data["checkpoints_as_of"] = as_of
    config = tmp_path / "configs/paper.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    dump_lockfile(_lock(["tiny/ft-1", "tiny/ft-2"]), tmp_path / "checkpoints.lock")
    return config, tmp_path / "checkpoints.lock"


def test_cli_as_of_config_uses_the_configs_date(tmp_path, hub, monkeypatch, capsys):
    api, shas = _api(hub)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: api)
    config, lock_path = _project(tmp_path, {"date": "2025-03-01", "source": "the authors' e-mail of 2026-01-05"})
    assert main(["lock", "resolve", "--config", str(config), "--as-of", "config"]) == 0
    out = capsys.readouterr()
    lock = load_lockfile(lock_path)
    assert lock.entry("tiny/ft-1").revision == shas[0] and lock.entry("tiny/ft-1").as_of == "2025-03-01"
    assert "as of 2025-03-01" in out.out and "checkpoints_as_of" in out.err
    assert f"{shas[0][:12]}  2025-01-10T08:00:00Z  tiny/ft-1" in out.out


def test_cli_as_of_config_without_a_date_names_the_field(tmp_path, hub, monkeypatch, capsys):
    api, _ = _api(hub)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: api)
    config, lock_path = _project(tmp_path, None)
    before = lock_path.read_bytes()
    assert main(["lock", "resolve", "--config", str(config), "--as-of", "config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoints_as_of" in err[0] and "--as-of YYYY-MM-DD" in err[0]
    assert lock_path.read_bytes() == before and api.calls == []
    assert main(["lock", "resolve", "--lockfile", str(lock_path), "--as-of", "config"]) == 2
    assert "pass --config FILE" in capsys.readouterr().err


def test_cli_reports_every_problem_and_keeps_the_rest(tmp_path, hub, monkeypatch, capsys):
    api, shas = _api(hub)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: api)
    path = tmp_path / "checkpoints.lock"
    dump_lockfile(_lock(), path)
    assert main(["lock", "resolve", "--lockfile", str(path), "--as-of", "2025-09-30"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("resolved ")]
    assert len(err) == 1 and "tiny/young has no commit at or before 2025-09-30" in err[0]
    lock = load_lockfile(path)
    assert lock.entry("tiny/ft-1").revision == shas[1] and lock.entry("tiny/young").revision is None
    assert lock.unresolved() == ["tiny/young"]


def test_the_paper_config_states_its_date_and_source():
    from pathlib import Path

    from repro.facts.config import load_config

    root = Path(__file__).resolve().parents[1]
    as_of = load_config(root / "configs/paper.yaml", check_methods=False, check_suite=False).config.checkpoints_as_of
    assert as_of is not None and as_of.date.isoformat() == parse_as_of(as_of.date.isoformat()).text
    assert len(as_of.source) > 40
