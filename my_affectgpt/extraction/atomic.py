"""Writing and checking feature files so that a killed process never leaves a corrupt one behind.

Every file is written to a temp file in the same folder and then ``os.replace``'d. Temp
names carry a ``tag`` (the extractor uses its shard, ``shard0of1``) so that a restarted
run can delete the temp files its killed predecessor left without touching those of
other shards writing into the same folder at the same time.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

TEMP_SUFFIX = ".tmp"
DEFAULT_TAG = "tmp"


def _write_atomic(path: Path, write: Callable, mode: str, tag: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{tag}.{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_npy_atomic(path: Path, array: np.ndarray, tag: str = DEFAULT_TAG) -> None:
    """``np.save`` a float32 copy of ``array`` to a temp file beside ``path``, then ``os.replace``."""
    data = np.ascontiguousarray(array, dtype=np.float32)
    _write_atomic(Path(path), lambda fh: np.save(fh, data, allow_pickle=False), "wb", tag)


def write_json_atomic(path: Path, obj, tag: str = DEFAULT_TAG) -> None:
    """Pretty-printed JSON written to a temp file beside ``path``, then ``os.replace``."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    _write_atomic(Path(path), lambda fh: fh.write(text), "w", tag)


def remove_stale_temps(folder: Path, tag: str) -> int:
    """Delete the temp files with ``tag`` in ``folder`` (left by a killed writer); return how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for tmp in folder.glob(f".{tag}.*{TEMP_SUFFIX}"):
        try:
            tmp.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def npy_problem(path: Path, rows: Optional[int]) -> Optional[str]:
    """Why ``path`` is not a usable feature file, or None when it is.

    Usable: a readable non-pickled ``.npy`` holding a finite float32 ``[rows, width]`` matrix
    (any row count when ``rows`` is None, as for AU features).
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        return f"unreadable ({err})"
    if array.dtype != np.float32 or array.ndim != 2:
        return f"holds {array.dtype} {list(array.shape)}, expected float32 [rows, width]"
    if rows is not None and array.shape[0] != rows:
        return f"has {array.shape[0]} rows, expected {rows}"
    if not np.isfinite(array).all():
        return "contains NaN or inf"
    return None
