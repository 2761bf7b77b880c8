"""Readers for the gold-label files of the MER-UniBench test datasets.

Each reader returns ``{sample name: value}``: an emotion label (str), a valence (float) or
an open-vocabulary label list (list[str]).

``.npz`` files (``label-6way.npz`` of MER2023/2024, ``label_4way.npz`` of IEMOCAPFour,
``label.npz`` of MELD, CMU-MOSI/MOSEI, SIMS, SIMSv2) come from the MERBench preprocessing
scripts, which save each split as a pickled dict, e.g. ``test_corpus = {name: {"emo": ...,
"val": ...}}``. Reading them needs ``np.load(allow_pickle=True)``, and unpickling runs code
stored in the file. That is accepted here, and only here, because the user names these
label files explicitly; features are always loaded with ``allow_pickle=False``. Whoever
would rather not unpickle can convert the labels to CSV once and use the CSV readers:
``name,label`` (also ``emo``/``discrete``), ``name,valence`` (also ``val``),
``name,openset``.
"""
from __future__ import annotations

import ast
import csv
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

KINDS = ("discrete", "sentiment", "openset")
_NAME_KEYS = ("names", "name", "filenames")
_LABEL_COLUMNS = ("label", "emo", "discrete")
_VALENCE_COLUMNS = ("valence", "val")
_OPENSET_COLUMNS = ("openset",)
_CANDIDATE_COLUMNS = ("candidates",)


class LabelFileError(ValueError):
    """A label file that exists but cannot be read as the expected format."""


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} does not exist; check the path you passed")


def parse_openset(value: object) -> List[str]:
    """Labels from an open-set cell: "['happy', 'excited']", "happy, excited", a list, or
    an empty cell (-> [])."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        text = "" if value is None else str(value).strip()
        if text.lower() in ("", "nan", "none", "[]"):
            return []
        if text.startswith("["):
            try:
                items = ast.literal_eval(text)
            except (ValueError, SyntaxError) as exc:
                raise ValueError(f"open-set value {text!r} is not a valid list literal") from exc
            if not isinstance(items, list):
                raise ValueError(f"open-set value {text!r} is not a list")
        else:
            items = text.replace("，", ",").replace("、", ",").replace(";", ",").split(",")
    labels = [str(item).strip().strip("'\"") for item in items]
    return [label for label in labels if label]


# ----------------------------------------------------------------------------- npz


def _to_python(value: object) -> object:
    """numpy scalars and 0-d arrays -> plain Python objects."""
    return value.item() if hasattr(value, "item") and getattr(value, "shape", None) == () else value


def _pick_split(path: Path, keys: Sequence[str], field: str) -> str:
    corpora = [k for k in keys if k.endswith("_corpus")]
    if len(corpora) == 1:
        return corpora[0]
    if "test_corpus" in corpora:
        return "test_corpus"
    if corpora:
        raise LabelFileError(
            f"label file {path} holds the splits {', '.join(corpora)} and no 'test_corpus'; "
            "choose one with split=... (CLI: --split NAME=KEY)"
        )
    raise LabelFileError(
        f"label file {path} has the keys {', '.join(keys) or 'none'}; expected a split key "
        f"such as 'test_corpus' or a key {field!r}"
    )


def _name(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_npz_labels(path: str | Path, field: str, split: Optional[str] = None) -> Dict[str, object]:
    """Raw per-sample values of ``field`` ("emo" or "val") from a label ``.npz``.

    Layouts understood:
    * MERBench: one key per split (``train_corpus``, ``test_corpus``, ``test1_corpus``,
      ``whole_corpus``...), each a pickled dict ``name -> {"emo": ..., "val": ...}`` (or
      ``name -> value``). Without ``split``, the only split or ``test_corpus`` is read.
    * flat: a key named ``field`` holding a pickled dict ``name -> value``, or an array
      beside a ``names`` array of the same length.
    """
    import numpy as np

    path = Path(path)
    _require_file(path)
    try:
        npz = np.load(path, allow_pickle=True)
    except Exception as exc:  # numpy raises OSError, ValueError or pickle errors here
        raise LabelFileError(f"label file {path} is not a readable .npz file: {exc}") from exc
    with npz:
        keys = list(npz.files)
        if split is None and field in keys:
            return _flat_layout(path, npz, keys, field)
        split = split or _pick_split(path, keys, field)
        if split not in keys:
            raise LabelFileError(f"label file {path} has no key {split!r}; its keys are {', '.join(keys)}")
        table = _to_python(npz[split])
    if not isinstance(table, dict):
        raise LabelFileError(
            f"label file {path}: key {split!r} holds {type(table).__name__}, expected a dict "
            "name -> {'emo': ..., 'val': ...}"
        )
    values = {}
    for name, record in table.items():
        if isinstance(record, dict):
            if field not in record:
                raise LabelFileError(
                    f"label file {path}: sample {name!r} in {split!r} has keys "
                    f"{sorted(record)}, expected {field!r}"
                )
            record = record[field]
        values[_name(name)] = _to_python(record)
    return values


def _flat_layout(path: Path, npz, keys: Sequence[str], field: str) -> Dict[str, object]:
    array = npz[field]
    if array.shape == ():
        table = array.item()
        if not isinstance(table, dict):
            raise LabelFileError(f"label file {path}: key {field!r} holds {type(table).__name__}, expected a dict")
        return {_name(name): _to_python(value) for name, value in table.items()}
    name_key = next((k for k in _NAME_KEYS if k in keys), None)
    if name_key is None or len(npz[name_key]) != len(array):
        raise LabelFileError(
            f"label file {path}: key {field!r} is an array, so a same-length array of sample "
            f"names is needed under one of {', '.join(_NAME_KEYS)}"
        )
    return {_name(_to_python(name)): _to_python(value) for name, value in zip(npz[name_key], array)}


def read_emotion_npz(
    path: str | Path, split: Optional[str] = None, label_names: Optional[Sequence[str]] = None
) -> Dict[str, str]:
    """Discrete labels (``emo``) from ``label-6way.npz`` / ``label_4way.npz`` / MELD ``label.npz``.

    Files that store class indices need ``label_names`` (the class names in index order).
    """
    values = {}
    for name, value in read_npz_labels(path, "emo", split).items():
        if isinstance(value, str):
            values[name] = value
        elif isinstance(value, (int, float)) and float(value).is_integer():
            if label_names is None or not 0 <= int(value) < len(label_names):
                raise LabelFileError(
                    f"label file {path} stores class index {value!r} for sample {name!r}; pass "
                    "label_names (CLI: --label-names NAME=a,b,...) listing the classes in index order"
                )
            values[name] = label_names[int(value)]
        else:
            raise LabelFileError(f"label file {path}: sample {name!r} has emotion {value!r}, expected a label")
    return values


def read_valence_npz(path: str | Path, split: Optional[str] = None) -> Dict[str, float]:
    """Valences (``val``) from a CMU-MOSI/MOSEI, SIMS, SIMSv2 (or MER) ``label.npz``."""
    return {
        name: _valence(value, f"label file {path}: sample {name!r}")
        for name, value in read_npz_labels(path, "val", split).items()
    }


def _valence(value: object, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise LabelFileError(f"{where} has valence {value!r}, expected a finite number")
    return number


# ----------------------------------------------------------------------------- csv


def _read_csv(path: str | Path, columns: Tuple[str, ...]) -> List[Tuple[int, str, str]]:
    """``(line, name, value)`` rows of a ``name,<one of columns>`` CSV."""
    path = Path(path)
    _require_file(path)
    expected = f"'name' and one of {', '.join(repr(c) for c in columns)}"
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip() for f in reader.fieldnames or []]
        column = next((c for c in columns if c in fields), None)
        if "name" not in fields or column is None:
            raise LabelFileError(f"label file {path} has columns {fields or 'none'}; expected {expected}")
        reader.fieldnames = fields
        rows, seen = [], set()
        for row in reader:
            line = reader.line_num
            name = (row.get("name") or "").strip()
            if not name:
                raise LabelFileError(f"label file {path}, line {line}: empty 'name'")
            if name in seen:
                raise LabelFileError(f"label file {path}, line {line}: sample {name!r} appears twice")
            seen.add(name)
            rows.append((line, name, (row.get(column) or "").strip()))
    if not rows:
        raise LabelFileError(f"label file {path} has a header but no rows")
    return rows


def read_label_csv(path: str | Path) -> Dict[str, str]:
    """Discrete labels from a ``name,label`` CSV."""
    labels = {}
    for line, name, value in _read_csv(path, _LABEL_COLUMNS):
        if not value:
            raise LabelFileError(f"label file {path}, line {line}: sample {name!r} has an empty label")
        labels[name] = value
    return labels


def read_valence_csv(path: str | Path) -> Dict[str, float]:
    """Valences from a ``name,valence`` CSV."""
    return {
        name: _valence(value, f"label file {path}, line {line}")
        for line, name, value in _read_csv(path, _VALENCE_COLUMNS)
    }


def _read_list_csv(path: str | Path, columns: Tuple[str, ...]) -> Dict[str, List[str]]:
    lists = {}
    for line, name, value in _read_csv(path, columns):
        try:
            lists[name] = parse_openset(value)
        except ValueError as exc:
            raise LabelFileError(f"label file {path}, line {line}: {exc}") from exc
    return lists


def read_openset_csv(path: str | Path) -> Dict[str, List[str]]:
    """Open-vocabulary labels from ``ovlabel.csv`` (``name,openset``).

    An empty cell means neutral, the MER-Caption+/OV-MERD convention (SPEC section 6).
    """
    return {name: labels or ["neutral"] for name, labels in _read_list_csv(path, _OPENSET_COLUMNS).items()}


def read_candidates_csv(path: str | Path) -> Dict[str, List[str]]:
    """Per-sample candidate labels from a ``name,candidates`` CSV (list string per row)."""
    candidates = _read_list_csv(path, _CANDIDATE_COLUMNS)
    empty = [name for name, labels in candidates.items() if not labels]
    if empty:
        raise LabelFileError(f"label file {path}: sample {empty[0]!r} has no candidate labels")
    return candidates


def read_gold(
    path: str | Path,
    kind: str,
    split: Optional[str] = None,
    label_names: Optional[Sequence[str]] = None,
) -> Dict[str, object]:
    """Gold values for a scoring ``kind`` from a ``.npz`` or ``.csv`` label file."""
    path = Path(path)
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    suffix = path.suffix.lower()
    if suffix == ".npz" and kind == "discrete":
        return read_emotion_npz(path, split, label_names)
    if suffix == ".npz" and kind == "sentiment":
        return read_valence_npz(path, split)
    if suffix == ".csv":
        reader = {"discrete": read_label_csv, "sentiment": read_valence_csv, "openset": read_openset_csv}[kind]
        return reader(path)
    raise LabelFileError(
        f"label file {path}: a {kind} label file must be "
        + ("a .csv (name,openset)" if kind == "openset" else "a .npz or a .csv")
    )
