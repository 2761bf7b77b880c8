"""(AU values -> description) pairs for fine-tuning the AU Agent (use 3).

Sources, chosen by the dataset block (``datasets.au_agent_pairs``):

* ``label_path`` set: a CSV or JSONL table with ``active_aus`` (a JSON object string or an
  object), ``au_description`` (optional) and ``description``; ``name`` is optional.
* otherwise every ``<name>/<name>_au_analysis.json`` under ``mer_factory_output`` (and
  ``mer_factory_folder`` when set): one pair per frame that has ``active_aus`` and a
  description, ``summary_description[frame]`` first, else the frame's
  ``fine_grained_description`` (assistant part). Upstream-shape JSONs take their frames from
  the OpenFace CSV beside them.

Targets must describe muscle movement only: a pair whose description holds an emotion word
(``facs.find_emotion_words``) is rejected and counted; when every pair is rejected the
dataset is an error listing the first ones. An unreadable JSON follows ``run.on_bad_sample``.

An item is ``{name, user_message, answer, max_length}``; ``user_message`` is built by
``conversation.au_agent_prompts.build_user_message``, the function generation uses.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Dict, List

from torch.utils.data import Dataset

from my_affectgpt.common.errors import UserError, UserFileNotFoundError
from my_affectgpt.common.registry import registry
from my_affectgpt.processors.au_json import AU_JSON_SUFFIX, AUJsonError, AUJsonLocator
from my_affectgpt.datasets.collate import collate
from my_affectgpt.processors.facs import find_emotion_words
from my_affectgpt.processors.openface_csv import OpenFaceCSVError, load_au_analysis_with_csv
from my_affectgpt.conversation.au_agent_prompts import build_user_message

logger = logging.getLogger("my_affectgpt")

TABLE_COLUMNS = ("active_aus", "description")
SHOWN_EXAMPLES = 5
EXAMPLE_AUS = '{"AU06_r": 2.3}'


class AUPairsError(UserError, ValueError):
    """A pairs source that cannot be used; the message names the file and the fix."""


# --------------------------------------------------------------------------- reading


def _parse_active_aus(value, where: str) -> Dict[str, float]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as err:
            raise AUPairsError(f"{where}: active_aus is not a JSON object ({err}); write e.g. {EXAMPLE_AUS}") from None
    if not isinstance(value, dict):
        raise AUPairsError(f"{where}: active_aus must be an object like {EXAMPLE_AUS}, got {type(value).__name__}")
    return value


def _table_rows(path: Path) -> List[dict]:
    if not path.is_file():
        raise UserFileNotFoundError(f"AU pairs file not found: {path}; check datasets.au_agent_pairs.label_path")
    if path.suffix.lower() == ".csv":
        from my_affectgpt.datasets.tables import read_csv

        return read_csv(path, list(TABLE_COLUMNS)).to_dict("records")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise AUPairsError(f"{path}, line {number}: not a JSON object ({err}); the file must be JSONL") from None
        if not isinstance(row, dict):
            raise AUPairsError(f"{path}, line {number}: expected a JSON object per line")
        missing = [c for c in TABLE_COLUMNS if c not in row]
        if missing:
            raise AUPairsError(f"{path}, line {number}: missing key(s) {', '.join(missing)}")
        rows.append(row)
    if not rows:
        raise AUPairsError(f"{path}: no pairs; expected one JSON object per line with {', '.join(TABLE_COLUMNS)}")
    return rows


def pairs_from_table(path: os.PathLike) -> List[dict]:
    """Pairs from a CSV (``.csv``) or JSONL (any other suffix) table."""
    path = Path(path)
    pairs = []
    for index, row in enumerate(_table_rows(path)):
        where = f"{path}, row {index + 1}"
        pairs.append({
            "name": str(row.get("name") or f"{path.stem}_{index + 1}"),
            "active_aus": _parse_active_aus(row["active_aus"], where),
            "au_description": str(row.get("au_description") or ""),
            "description": str(row["description"] or "").strip(),
        })
    return pairs


def _pairs_of_json(path: Path) -> List[dict]:
    analysis = load_au_analysis_with_csv(path)
    summaries = dict(analysis.summary_descriptions)
    video = path.name[: -len(AU_JSON_SUFFIX)]
    pairs = []
    for frame in analysis.frames:
        description = summaries.get(frame.frame) or frame.fine_grained_description
        if frame.active_aus and description:
            pairs.append({
                "name": f"{video}_frame{frame.frame}",
                "active_aus": dict(frame.active_aus),
                "au_description": frame.au_description,
                "description": description,
            })
    return pairs


def pairs_from_jsons(folder: os.PathLike, on_bad_file: str = "error") -> List[dict]:
    """Pairs from every ``<name>/<name>_au_analysis.json`` under ``folder``.

    ``on_bad_file``: ``error`` raises on an unreadable JSON or CSV; ``skip`` counts and logs it.
    """
    folder = Path(folder)
    paths = sorted(folder.glob(f"*/*{AU_JSON_SUFFIX}"))
    if not paths:
        raise UserFileNotFoundError(
            f"no <name>/<name>{AU_JSON_SUFFIX} files under {folder}; set datasets.au_agent_pairs."
            "mer_factory_output (and mer_factory_folder), or label_path to a CSV/JSONL of pairs"
        )
    pairs, bad = [], []
    for path in paths:
        try:
            pairs.extend(_pairs_of_json(path))
        except (AUJsonError, OpenFaceCSVError) as err:
            if on_bad_file != "skip":
                raise
            bad.append(str(err))
    if bad:
        logger.warning(
            "AU pairs: skipped %d unreadable file(s) (run.on_bad_sample: skip); first: %s", len(bad), bad[0]
        )
    return pairs


def reject_emotion_targets(pairs: List[dict], source: str) -> List[dict]:
    """Pairs whose description has no emotion word; rejects are counted, all rejected is an error."""
    kept, rejected = [], []
    for pair in pairs:
        words = find_emotion_words(pair["description"])
        (rejected if words else kept).append((pair, words))
    examples = "; ".join(f"{p['name']}: {', '.join(w)}" for p, w in rejected[:SHOWN_EXAMPLES])
    if rejected and not kept:
        raise AUPairsError(
            f"{source}: all {len(rejected)} AU descriptions contain emotion words ({examples}); AU Agent "
            "targets must describe muscle movement only: rewrite them or regenerate the descriptions"
        )
    if rejected:
        logger.warning(
            "%s: rejected %d of %d AU descriptions containing emotion words (%s)",
            source, len(rejected), len(pairs), examples,
        )
    return [p for p, _ in kept]


# --------------------------------------------------------------------------- dataset


class AUAgentPairsDataset(Dataset):
    """Items ``{name, user_message, answer, max_length}`` from (AU values -> description) pairs."""

    def __init__(self, pairs: List[dict], max_length: int = 1024, source: str = "AU pairs"):
        usable = [p for p in pairs if p["active_aus"] and p["description"]]
        if len(usable) < len(pairs):
            logger.warning(
                "%s: skipped %d pair(s) without active AUs or a description", source, len(pairs) - len(usable)
            )
        self.pairs = reject_emotion_targets(usable, source)
        if not self.pairs:
            raise AUPairsError(f"{source}: no pairs with both active AUs and a description")
        self.rejected = len(usable) - len(self.pairs)
        self.max_length = max_length
        self.messages = []
        for pair in self.pairs:
            try:
                self.messages.append(build_user_message(pair))
            except ValueError as err:
                raise AUPairsError(f"{source}, pair '{pair['name']}': {err}") from None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Dict:
        pair = self.pairs[index]
        return {
            "name": pair["name"],
            "user_message": self.messages[index],
            "answer": pair["description"],
            "max_length": self.max_length,
        }

    def collater(self, samples: List[Dict]) -> Dict:
        return collate(samples)


@registry.register_builder("au_agent_pairs")
class AUAgentPairsBuilder:
    """Builds the block's ``split`` from ``label_path`` or the AU JSONs (see the module docstring)."""

    def __init__(self, cfg, name: str):
        self.cfg = cfg
        self.name = name

    def build(self, question=None) -> Dict[str, AUAgentPairsDataset]:
        ds = self.cfg.datasets[self.name]
        if ds.label_path:
            source = str(ds.label_path)
            pairs = pairs_from_table(ds.label_path)
        elif ds.mer_factory_output:
            folder = AUJsonLocator(ds.mer_factory_output, ds.mer_factory_folder or None).base
            source = str(folder)
            pairs = pairs_from_jsons(folder, on_bad_file=self.cfg.run.on_bad_sample)
        else:
            raise AUPairsError(
                f"datasets.{self.name} needs label_path (a CSV/JSONL of active_aus, au_description, "
                "description) or mer_factory_output (AU JSONs with descriptions)"
            )
        return {ds.split: AUAgentPairsDataset(pairs, max_length=ds.max_length, source=source)}
