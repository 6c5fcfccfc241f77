"""Storage of a standalone `repro evaluate`: runs/evaluate/<model-name>-<hash>/{scores.json, items.json.gz}.

Both files are written into a temporary folder that is renamed into place, so a reader sees either the
previous complete evaluation or the new one. The experiment runner has its own results store.
"""

from __future__ import annotations

import json
from pathlib import Path

from repro.atomic_io import atomic_directory, atomic_write_json
from repro.errors import OutputFolderError
from repro.evaluate.model_identity import evaluation_folder_name
from repro.evaluate.outcome import EvalOutcome, read_items
from repro.facts.paths import EVALUATE_DIR

SCORES_FILE = "scores.json"
ITEMS_FILE = "items.json.gz"


def store_evaluation(
    outcome: EvalOutcome,
    model_dir: str | Path,
    root: str | Path = EVALUATE_DIR,
    content_hash: str | None = None,
) -> Path:
    """Write `outcome` under `root`/<model-name>-<short content hash>/ and return that folder."""
    final = Path(root) / evaluation_folder_name(model_dir, content_hash)
    if final.exists() and not (final / SCORES_FILE).is_file() and not (final.is_dir() and not any(final.iterdir())):
        raise OutputFolderError(f"{final} exists and is not a stored evaluation (no {SCORES_FILE}): move it away "
                                "or pass another --out; nothing was changed", field="--out")
    with atomic_directory(final) as tmp:
        atomic_write_json(tmp / SCORES_FILE, outcome.to_json())
        outcome.write_items(tmp / ITEMS_FILE)
    return final


def load_evaluation(folder: str | Path) -> EvalOutcome:
    """Read back a stored standalone evaluation (scores and items)."""
    folder = Path(folder)
    data = json.loads((folder / SCORES_FILE).read_text(encoding="utf-8"))
    return EvalOutcome.from_json(data, items=read_items(folder / ITEMS_FILE))
