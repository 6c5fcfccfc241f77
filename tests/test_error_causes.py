"""Library errors keep their cause: a translated failure chains the library's exception, and a bug in code
we call is not translated at all."""

from __future__ import annotations

import pytest

from repro.errors import ConfigError, EvaluationError, MergeError
from repro.facts.suites import TaskSpec


class _Manager:
    def __init__(self, error: BaseException):
        self.error = error
        self._index = {}

    def load(self, names):
        raise self.error


def test_a_dataset_failure_becomes_one_clear_error_chained_to_its_cause():
    from repro.evaluate.task_loading import load_task_objects

    cause = FileNotFoundError("no such dataset file: data.jsonl")
    with pytest.raises(EvaluationError, match="could not be loaded: FileNotFoundError") as error:
        load_task_objects(_Manager(cause), [TaskSpec(name="my_task")])
    assert error.value.__cause__ is cause


def test_a_bug_while_loading_a_task_is_not_disguised_as_a_task_error():
    from repro.evaluate.task_loading import load_task_objects

    with pytest.raises(TypeError, match="a bug"):
        load_task_objects(_Manager(TypeError("a bug")), [TaskSpec(name="my_task")])


def test_file_errors_of_configs_and_checkpoints_keep_their_cause(tmp_path):
    from repro.facts.config import load_config
    from repro.merge.checkpoint_safety import model_config

    (tmp_path / "c.yaml").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "c.yaml")
    assert isinstance(error.value.__cause__, UnicodeDecodeError)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(MergeError) as merge_error:
        model_config(tmp_path)
    assert isinstance(merge_error.value.__cause__, ValueError)
