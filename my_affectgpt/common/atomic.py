"""Atomic file writes: a killed process leaves either the old file or the complete new one.

Every writer in the package goes through :func:`write_file_atomic`: the content goes to a
uniquely named temp file beside the target (``.{tag}.{name}.{pid}{random}.tmp``), is fsynced,
then ``os.replace``d over the target. The ``tag`` lets a restarted writer (an extraction
shard, a training run) delete the temp files its killed predecessor left without touching
those of other writers in the same folder (:func:`remove_stale_temps`).

A full disk while writing is one :class:`DiskFullError` naming the file (the previous version
of the file is intact); a folder that cannot be created or written is one
:class:`OutputWriteError` naming the config key (:func:`make_output_folder`).
"""
from __future__ import annotations

import errno
import json
import os
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional

from my_affectgpt.common.errors import UserError

TEMP_SUFFIX = ".tmp"
DEFAULT_TAG = "tmp"
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class OutputWriteError(UserError, OSError):
    """An output file or folder cannot be written for a reason the user can fix."""


class DiskFullError(OutputWriteError):
    """The disk (or the user's quota) filled up while writing a file; ``reason`` says which."""

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


def disk_full_cause(exc: BaseException) -> Optional[OSError]:
    """The ENOSPC/EDQUOT ``OSError`` in ``exc``'s chain, or None.

    ``torch.save`` on a file object reports the file's failed write as a ``RuntimeError``
    ("unexpected pos ...") whose context is the ``OSError``.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


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
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        full = disk_full_cause(exc)
        if full is None:
            raise
        reason = os.strerror(full.errno).lower()
        before = f"the previous {path.name} is intact" if path.exists() else f"{path.name} was not written"
        raise DiskFullError(
            f"{reason} while writing {path}; free space on that disk and run again; {before}", reason=reason
        ) from None


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


def make_output_folder(folder: os.PathLike, key: str) -> Path:
    """Create ``folder`` (and its parents) and check it can be written in.

    ``key`` is the config key that named it; every problem is one :class:`OutputWriteError`
    naming the key, the path and the fix.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        where = "is a file" if blocker == folder else f"cannot be created: {blocker} is a file"
        raise OutputWriteError(f"{key} {folder} {where}, not a folder; set {key} to a folder path "
                               f"(it is created if missing)") from None
    except OSError as exc:
        raise folder_write_error(folder, key, exc) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise folder_write_error(folder, key, PermissionError(errno.EACCES, os.strerror(errno.EACCES)))
    return folder


def folder_write_error(folder: Path, key: str, exc: OSError) -> OutputWriteError:
    """The :class:`OutputWriteError` for an ``OSError`` met creating or writing in ``folder``."""
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    if exc.errno in DISK_FULL_ERRNOS:
        return DiskFullError(f"cannot write in {key} {folder}: {reason}; free space on that disk "
                             f"or set {key} to a folder on another disk", reason=reason)
    return OutputWriteError(f"cannot write in {key} {folder}: {reason}; set {key} to a folder you can write "
                            f"to (--options {key}=PATH) or fix that folder's permissions")


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
