"""One training per run folder: ``{output_dir}/.lock`` names the process that owns it.

Two trainings writing into the same folder would mix their checkpoints, ``config.yaml`` and
``log.txt``. :class:`RunLock` creates the lock file with ``O_CREAT | O_EXCL`` (atomic, also
on NFS v3+), holding the owner's pid, host and start time, before anything else is written
there; a second training finds it and stops with :class:`RunFolderLockedError`. The lock is
removed when the owner finishes, fails or is interrupted. A lock left by a process that was
killed (``kill -9``, a crash of the machine) is *stale* when its owner ran on this host and
that pid no longer exists: it is taken over with a warning. On another host that cannot be
checked, so the message says to delete the file.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from my_affectgpt.common.atomic import folder_write_error, make_output_folder
from my_affectgpt.common.errors import UserError

logger = logging.getLogger("my_affectgpt")

LOCK_NAME = ".lock"


class RunFolderLockedError(UserError):
    """Another training owns the run folder."""


@dataclass(frozen=True)
class LockOwner:
    pid: int
    host: str
    started: str
    token: str  # tells this owner's lock from a later one with the same pid

    @classmethod
    def current(cls) -> "LockOwner":
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        return cls(os.getpid(), socket.gethostname(), started, uuid.uuid4().hex)

    @classmethod
    def read(cls, path: Path) -> Optional["LockOwner"]:
        """The owner written in ``path``; None when it is unreadable (or still being written)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(int(data["pid"]), str(data["host"]), str(data["started"]), str(data["token"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}"

    def is_gone(self) -> bool:
        """Whether this owner ran on this host and its process no longer exists."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, owned by another user
            return False
        return False


class RunLock:
    """``with RunLock(output_dir):`` holds ``{output_dir}/.lock`` (creating the folder).

    ``key`` names the folder's config key in messages.
    """

    def __init__(self, output_dir: os.PathLike, key: str = "run.output_dir"):
        self.folder = Path(output_dir)
        self.key = key
        self.path = self.folder / LOCK_NAME
        self.owner: Optional[LockOwner] = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def acquire(self) -> None:
        make_output_folder(self.folder, self.key)
        me = LockOwner.current()
        for _attempt in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = LockOwner.read(self.path)
                if holder is None or not holder.is_gone():
                    raise self._locked_error(holder) from None
                self._remove_stale(holder)
                continue
            except OSError as exc:
                raise folder_write_error(self.folder, self.key, exc) from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(asdict(me), fh)
                fh.flush()
                os.fsync(fh.fileno())
            self.owner = me
            return
        raise self._locked_error(LockOwner.read(self.path))

    def release(self) -> None:
        """Remove the lock if it is still this process's."""
        if self.owner is not None and LockOwner.read(self.path) == self.owner:
            self.path.unlink()
        self.owner = None

    def _remove_stale(self, holder: LockOwner) -> None:
        """Take ``holder``'s dead lock out of the way; race-safe against another taker.

        The lock is renamed aside first: only then is it certain that the file removed is the
        stale one and not a lock another process has just created in its place (which is put
        back).
        """
        aside = self.folder / f"{LOCK_NAME}.stale-{os.getpid()}{uuid.uuid4().hex[:8]}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another process took it over first
        if LockOwner.read(aside) == holder:
            aside.unlink()
            logger.warning(f"took over {self.path}: its owner ({holder.describe()}) is no longer running")
            return
        try:
            os.link(aside, self.path)  # a live lock was moved: put it back
        except FileExistsError:
            pass
        aside.unlink()

    def _locked_error(self, holder: Optional[LockOwner]) -> RunFolderLockedError:
        who = holder.describe() if holder else f"{self.path} exists but names no owner"
        return RunFolderLockedError(
            f"{self.key} {self.folder} is in use by another training ({who}); wait for it to finish or set "
            f"another {self.key}; if no training is running there any more, delete {self.path}"
        )
