"""Readers for the gold-label files of the MER-UniBench test datasets (and the open-set
training CSVs of the MER-Caption+ layout).

Each reader returns ``{sample name: value}``: an emotion label (str), a valence (float) or
an open-vocabulary label list (list[str]).

``.npz`` files (``label-6way.npz`` of MER2023/2024, ``label_4way.npz`` of IEMOCAPFour,
``label.npz`` of MELD, CMU-MOSI/MOSEI, SIMS, SIMSv2) come from the MERBench preprocessing
scripts, which save each split as a pickled dict, e.g. ``test_corpus = {name: {"emo": ...,
"val": ...}}``. They are unpickled as plain data only (dicts, lists, strings, numbers, numpy
arrays and scalars; ``my_affectgpt.common.pickled_npz``): a file whose pickle names anything
else is refused and nothing in it runs. Labels can also be given as CSV: ``name,label``
(also ``emo``/``discrete``), ``name,valence`` (also ``val``), ``name,openset``.

CSV label files: a sample may appear twice with the same value (one is kept); twice with
different values is an error naming both lines. An empty open-set cell is an error in a
gold-label file; MER-Caption+/OV-MERD training files read it as neutral, as the original
AffectGPT does (``read_openset_csv(..., empty="neutral")``).
"""
from __future__ import annotations

import math
import pickle
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from my_affectgpt.common.errors import UserError, UserFileNotFoundError
from my_affectgpt.common.label_lists import split_label_list
from my_affectgpt.common.sample_names import check_sample_name
from my_affectgpt.datasets.tables import read_table, rows_by_name

KINDS = ("discrete", "sentiment", "openset")
EMPTY_OPENSET_POLICIES = ("error", "neutral")
_NAME_KEYS = ("names", "name", "filenames")
_LABEL_COLUMNS = ("label", "emo", "discrete")
_VALENCE_COLUMNS = ("valence", "val")
_OPENSET_COLUMNS = ("openset",)
_CANDIDATE_COLUMNS = ("candidates",)
# The cells pandas reads as missing by default: the original reads its CSVs with pandas, so
# an open-set cell holding one of these is an empty label list there.
_PANDAS_MISSING = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})


class LabelFileError(UserError, ValueError):
    """A label file that exists but cannot be read as the expected format."""


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise UserFileNotFoundError(
            f"label file {path} does not exist; check the path (in a dataset block: data_root and "
            "label_csv or label_path)"
        )


def parse_openset(value: object) -> List[str]:
    """Labels from an open-set cell, read as the original AffectGPT's ``string_to_list``:
    ``['a', 'b']``, ``[a, b]`` and ``a, b`` all give ``["a", "b"]``; an empty or missing
    cell gives ``[]``. Only commas and quotes separate labels.

    Raises ValueError for a cell that still holds brackets after that (a nested list),
    which the original would turn into labels such as ``'['``.
    """
    if isinstance(value, str) and value.strip() in _PANDAS_MISSING:
        return []
    text = value.strip() if isinstance(value, str) else value
    labels = [str(label).strip() for label in split_label_list(text) if str(label).strip()]
    if any("[" in label or "]" in label for label in labels):
        raise ValueError(
            f"open-set value {text!r} is a nested list; write one list: ['a', 'b'], [a, b] or a, b"
        )
    return labels


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


def _load_npz(path: Path) -> Dict[str, object]:
    from my_affectgpt.common.pickled_npz import RefusedPickleError, load_npz

    _require_file(path)
    try:
        return load_npz(path)
    except RefusedPickleError as exc:
        raise LabelFileError(
            f"label file {path} refused: its pickled data calls {exc.module}.{exc.name}, which a label "
            "file never needs (loading it could run code). Use the label file of the dataset release, "
            "or write the labels as CSV (name,label or name,valence)"
        ) from None
    except (zipfile.BadZipFile, pickle.UnpicklingError, ValueError, TypeError, OSError, EOFError) as exc:
        raise LabelFileError(f"label file {path} is not a readable .npz file: {exc}") from None


def read_npz_labels(path: str | Path, field: str, split: Optional[str] = None) -> Dict[str, object]:
    """Raw per-sample values of ``field`` ("emo" or "val") from a label ``.npz``.

    Layouts understood:
    * MERBench: one key per split (``train_corpus``, ``test_corpus``, ``test1_corpus``,
      ``whole_corpus``...), each a pickled dict ``name -> {"emo": ..., "val": ...}`` (or
      ``name -> value``). Without ``split``, the only split or ``test_corpus`` is read.
    * flat: a key named ``field`` holding a pickled dict ``name -> value``, or an array
      beside a ``names`` array of the same length.
    """
    path = Path(path)
    npz = _load_npz(path)
    keys = list(npz)
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


def _flat_layout(path: Path, npz: Dict[str, object], keys: Sequence[str], field: str) -> Dict[str, object]:
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
    path: str | Path,
    split: Optional[str] = None,
    label_names: Optional[Sequence[str]] = None,
    label_set: Optional[Sequence[str]] = None,
) -> Dict[str, str]:
    """Discrete labels (``emo``) from ``label-6way.npz`` / ``label_4way.npz`` / MELD ``label.npz``.

    Files that store class indices need ``label_names`` (the class names in index order).
    With ``label_set``, a label outside it is an error (see ``_in_label_set``).
    """
    values = {}
    for name, value in read_npz_labels(path, "emo", split).items():
        where = f"label file {path}: sample {name!r}"
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
            raise LabelFileError(f"{where} has emotion {value!r}, expected a label")
        values[name] = _in_label_set(values[name], label_set, where)
    return values


def _in_label_set(label: str, label_set: Optional[Sequence[str]], where: str) -> str:
    """``label`` spelled as in ``label_set`` (compared without regard to case and outer
    spaces); an error naming ``where`` when it is not in the set. No set: ``label`` as is."""
    if label_set is None:
        return label
    canonical = {known.strip().lower(): known for known in label_set}
    found = canonical.get(label.strip().lower())
    if found is None:
        raise LabelFileError(
            f"{where} has label {label!r}, which is not one of the dataset's {len(label_set)} labels "
            f"({', '.join(label_set)}); correct the label or remove the sample"
        )
    return found


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
    """``(line, name, value)`` rows of a ``name,<one of columns>`` CSV, one per sample."""
    path = Path(path)
    _require_file(path)
    header, rows = read_table(path)
    expected = f"'name' and one of {', '.join(repr(c) for c in columns)}"
    if not header:
        raise LabelFileError(f"label file {path} is empty; expected the columns {expected}")
    column = next((c for c in columns if c in header), None)
    if "name" not in header or column is None:
        raise LabelFileError(f"label file {path} has columns {header}; expected {expected}")
    if not rows:
        raise LabelFileError(f"label file {path} has a header but no rows")
    for row in rows:
        if not row["name"].strip():
            raise LabelFileError(f"label file {path}, line {row.line}: empty 'name'")
        check_sample_name(row["name"], f"label file {path}, line {row.line}")
    return [(row.line, name, row[column].strip()) for name, row in rows_by_name(path, rows, column).items()]


def read_label_csv(path: str | Path, label_set: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """Discrete labels from a ``name,label`` CSV (with ``label_set``: only labels in it)."""
    labels = {}
    for line, name, value in _read_csv(path, _LABEL_COLUMNS):
        where = f"label file {path}, line {line}: sample {name!r}"
        if not value:
            raise LabelFileError(f"{where} has an empty label; write its label or remove the row")
        labels[name] = _in_label_set(value, label_set, where)
    return labels


def read_valence_csv(path: str | Path) -> Dict[str, float]:
    """Valences from a ``name,valence`` CSV."""
    return {
        name: _valence(value, f"label file {path}, line {line}")
        for line, name, value in _read_csv(path, _VALENCE_COLUMNS)
    }


def _read_list_csv(path: str | Path, columns: Tuple[str, ...]) -> Dict[str, Tuple[int, List[str]]]:
    lists = {}
    for line, name, value in _read_csv(path, columns):
        try:
            lists[name] = (line, parse_openset(value))
        except ValueError as exc:
            raise LabelFileError(f"label file {path}, line {line}: {exc}") from None
    return lists


def read_openset_csv(path: str | Path, empty: str = "error") -> Dict[str, List[str]]:
    """Open-vocabulary labels from a ``name,openset`` CSV (``ovlabel.csv``,
    ``track2_train_mercaptionplus.csv``).

    ``empty`` says what an empty cell means: ``"error"`` for gold labels (a test file must
    say what the answer is), ``"neutral"`` for the MER-Caption+/OV-MERD training files, which
    the original AffectGPT reads that way.
    """
    if empty not in EMPTY_OPENSET_POLICIES:
        raise ValueError(f"empty must be one of {EMPTY_OPENSET_POLICIES}, not {empty!r}")
    labels = {}
    for name, (line, values) in _read_list_csv(path, _OPENSET_COLUMNS).items():
        if not values and empty == "error":
            raise LabelFileError(
                f"label file {path}, line {line}: sample {name!r} has an empty open-set label; a gold "
                "label file must name the emotions (write ['neutral'] if that is the answer) or drop the row"
            )
        labels[name] = values or ["neutral"]
    return labels


def read_candidates_csv(path: str | Path) -> Dict[str, List[str]]:
    """Per-sample candidate labels from a ``name,candidates`` CSV (list string per row)."""
    candidates = {}
    for name, (line, labels) in _read_list_csv(path, _CANDIDATE_COLUMNS).items():
        if not labels:
            raise LabelFileError(f"label file {path}, line {line}: sample {name!r} has no candidate labels")
        candidates[name] = labels
    return candidates


def read_gold(
    path: str | Path,
    kind: str,
    split: Optional[str] = None,
    label_names: Optional[Sequence[str]] = None,
    label_set: Optional[Sequence[str]] = None,
) -> Dict[str, object]:
    """Gold values for a scoring ``kind`` from a ``.npz`` or ``.csv`` label file.

    ``label_set`` (discrete only): the dataset's labels; a gold label outside it is an error.
    """
    path = Path(path)
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    suffix = path.suffix.lower()
    if suffix == ".npz" and kind == "discrete":
        return read_emotion_npz(path, split, label_names, label_set)
    if suffix == ".npz" and kind == "sentiment":
        return read_valence_npz(path, split)
    if suffix == ".csv" and kind == "discrete":
        return read_label_csv(path, label_set)
    if suffix == ".csv":
        return read_valence_csv(path) if kind == "sentiment" else read_openset_csv(path)
    raise LabelFileError(
        f"label file {path}: a {kind} label file must be "
        + ("a .csv (name,openset)" if kind == "openset" else "a .npz or a .csv")
    )
