"""Atomic file writes: a killed process leaves either the old file or the complete new one.

Every writer in the package goes through :func:`write_file_atomic`: the content goes to a
uniquely named temp file beside the target (``.{name}.{pid}.{random}.tmp``), is fsynced, then
``os.replace``d over the target.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable

TEMP_SUFFIX = ".tmp"


def write_file_atomic(path: os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(fh)`` on a temp file beside ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name opened with "xb" (not mkstemp) so the file gets the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
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


def write_text_atomic(path: os.PathLike, text: str) -> None:
    write_file_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json_atomic(path: os.PathLike, payload: Any) -> None:
    """Pretty-printed UTF-8 JSON (non-ASCII kept as is)."""
    write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def save_npy_atomic(path: os.PathLike, array) -> None:
    """A float32 ``.npy`` (never pickled)."""
    import numpy as np

    write_file_atomic(path, lambda fh: np.save(fh, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False))
