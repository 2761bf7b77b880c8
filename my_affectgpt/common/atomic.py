"""Atomic file writes: a killed process leaves either the old file or the complete new one.

Every writer in the package goes through :func:`write_file_atomic`: the content goes to a
uniquely named temp file beside the target (``.{tag}.{name}.{pid}{random}.tmp``), is fsynced,
then ``os.replace``d over the target. The ``tag`` lets a restarted writer (an extraction
shard) delete the temp files its killed predecessor left without touching those of other
writers in the same folder (:func:`remove_stale_temps`).
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable

TEMP_SUFFIX = ".tmp"
DEFAULT_TAG = "tmp"


def write_file_atomic(path: os.PathLike, write: Callable[[BinaryIO], None], tag: str = DEFAULT_TAG) -> None:
    """Call ``write(fh)`` on a temp file beside ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name opened with "xb" (not mkstemp) so the file gets the usual umask permissions.
    tmp = path.with_name(f".{tag}.{path.name}.{os.getpid()}{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path: os.PathLike, text: str, tag: str = DEFAULT_TAG) -> None:
    write_file_atomic(path, lambda fh: fh.write(text.encode("utf-8")), tag)


def write_json_atomic(path: os.PathLike, payload: Any, tag: str = DEFAULT_TAG) -> None:
    """Pretty-printed UTF-8 JSON (non-ASCII kept as is)."""
    write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n", tag)


def save_npy_atomic(path: os.PathLike, array, tag: str = DEFAULT_TAG) -> None:
    """A float32 ``.npy`` (never pickled)."""
    import numpy as np

    data = np.ascontiguousarray(array, dtype=np.float32)
    write_file_atomic(path, lambda fh: np.save(fh, data, allow_pickle=False), tag)


def remove_stale_temps(folder: os.PathLike, tag: str) -> int:
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


def write_folder_atomic(out_dir: os.PathLike, fill: Callable[[Path], None], marker: str) -> Path:
    """Build a folder with ``fill(tmp_dir)`` beside ``out_dir``, then rename it into place.

    An existing ``out_dir`` is replaced only when it holds ``marker`` (i.e. it is an earlier
    output of the same kind); anything else there is an error rather than deleted.
    """
    import shutil
    import tempfile

    out = Path(out_dir)
    if out.exists() and not (out / marker).exists():
        raise FileExistsError(f"{out} exists and is not an earlier output (no {marker}); pick another path")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        fill(tmp)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
