"""Training checkpoints: atomic writes, safe loading, finding the newest good one, pruning.

A checkpoint is ``{output_dir}/checkpoint_{epoch:06d}.pth``, ``epoch`` numbered from 1 as in
the original AffectGPT (``checkpoint_000001.pth`` holds the first epoch). It is loaded with
``weights_only=True``, so it may only hold tensors, plain containers, numbers and strings: RNG
states are stored as tensors/lists and the config as a YAML string. It is written to a
temporary file in the same folder and renamed over the target, so a run killed while saving
leaves the previous file intact.

Checkpoints carry ``format_version`` (:data:`FORMAT_VERSION`); those without it were written
by an earlier version of the runner that numbered epochs from 0 (:func:`upgrade_state`).

The original AffectGPT names its checkpoints ``checkpoint_{epoch:06d}_loss_{loss}.pth``.
:func:`find_epoch_checkpoint` and :func:`find_last_checkpoint` accept both namings; resuming
and pruning (:func:`list_checkpoints`) only ever touch this project's own files.
"""
from __future__ import annotations

import logging
import os
import pickle
import random
import re
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional

from my_affectgpt.common.atomic import write_file_atomic
from my_affectgpt.common.errors import UserError, UserFileNotFoundError

logger = logging.getLogger("my_affectgpt")

CHECKPOINT_RE = re.compile(r"^checkpoint_(\d{6,})\.pth$")
# This project's names and the original AffectGPT's ``checkpoint_000030_loss_0.602.pth``.
ANY_CHECKPOINT_RE = re.compile(r"^checkpoint_(\d{6,})(?:_loss_.*)?\.pth$")
FORMAT_VERSION = 2  # 2: epochs numbered from 1; no key (version 1): numbered from 0
TEMP_TAG = "train"  # temp-file tag of every file training writes (see atomic.remove_stale_temps)


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


class CheckpointNotFoundError(UserFileNotFoundError):
    """No checkpoint of the requested epoch in a folder."""


class AmbiguousCheckpointError(CheckpointError):
    """Several files claim to be the checkpoint of one epoch."""


def checkpoint_path(output_dir: os.PathLike, epoch: int) -> Path:
    return Path(output_dir) / f"checkpoint_{epoch:06d}.pth"


def upgrade_state(state: Dict[str, Any]) -> bool:
    """Renumber a runner checkpoint written before ``format_version`` (epochs from 0) in place.

    Its ``epoch`` and the visualizer's ``epochs`` become numbered from 1; the global step and
    every other field mean the same in both formats. Returns whether anything changed.
    """
    if "format_version" in state:
        return False
    state["epoch"] = int(state["epoch"]) + 1
    state["visualizer"] = {**state["visualizer"], "epochs": state["visualizer"]["epochs"] + 1}
    state["format_version"] = FORMAT_VERSION
    return True


def save_checkpoint(state: Dict[str, Any], path: os.PathLike) -> None:
    import torch

    write_file_atomic(path, lambda fh: torch.save(state, fh), tag=TEMP_TAG)


def load_checkpoint(path: os.PathLike) -> Dict[str, Any]:
    """Load a checkpoint onto the CPU with ``weights_only=True``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserFileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
        raise CheckpointError(
            f"cannot read checkpoint {path}: it is not a checkpoint written by this project, which holds "
            f"only tensors, numbers, strings and plain containers ({detail.group(1) if detail else exc})"
        ) from None
    except Exception as exc:  # RuntimeError/EOFError/OSError for truncated or corrupt files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: truncated or corrupt ({first_line})") from exc


def list_checkpoints(output_dir: os.PathLike) -> List[Path]:
    """This project's ``checkpoint_{epoch:06d}.pth`` files in ``output_dir``, oldest epoch first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def _checkpoints_by_epoch(folder: Path) -> Dict[int, List[Path]]:
    """Checkpoint files of ``folder`` under either naming, by epoch."""
    if not folder.is_dir():
        raise UserFileNotFoundError(f"checkpoint folder not found: {folder}")
    found: Dict[int, List[Path]] = defaultdict(list)
    for path in folder.iterdir():
        match = ANY_CHECKPOINT_RE.match(path.name)
        if match and path.is_file():
            found[int(match.group(1))].append(path)
    return found


def _only_one(epoch: int, candidates: List[Path], folder: Path) -> Path:
    if len(candidates) > 1:
        names = ", ".join(sorted(p.name for p in candidates))
        raise AmbiguousCheckpointError(
            f"{folder} holds {len(candidates)} checkpoints of epoch {epoch} ({names}); "
            f"move all but one elsewhere, or name the file you mean instead of the epoch"
        )
    return candidates[0]


def checkpoint_epochs(folder: os.PathLike) -> List[int]:
    """The epochs of the checkpoints in ``folder`` under either naming, ascending."""
    return sorted(_checkpoints_by_epoch(Path(folder)))


def find_epoch_checkpoint(folder: os.PathLike, epoch: int) -> Path:
    """The checkpoint of ``epoch`` (numbered from 1) in ``folder``.

    ``checkpoint_{epoch:06d}.pth`` (this project) or ``checkpoint_{epoch:06d}_loss_*.pth``
    (the original AffectGPT); none or several is a :class:`~my_affectgpt.common.errors.UserError`
    listing what the folder holds.
    """
    folder = Path(folder)
    found = _checkpoints_by_epoch(folder)
    if epoch not in found:
        held = _describe_epochs(sorted(found))
        raise CheckpointNotFoundError(
            f"no checkpoint of epoch {epoch} in {folder} (looked for checkpoint_{epoch:06d}.pth and "
            f"checkpoint_{epoch:06d}_loss_*.pth); {held}"
        )
    return _only_one(epoch, found[epoch], folder)


def find_last_checkpoint(folder: os.PathLike) -> Path:
    """The checkpoint of the highest epoch in ``folder``, under either naming."""
    folder = Path(folder)
    found = _checkpoints_by_epoch(folder)
    if not found:
        raise CheckpointNotFoundError(
            f"no checkpoint in {folder} (looked for checkpoint_NNNNNN.pth and checkpoint_NNNNNN_loss_*.pth)"
        )
    last = max(found)
    return _only_one(last, found[last], folder)


def _describe_epochs(epochs: List[int]) -> str:
    if not epochs:
        return "it holds no checkpoint files"
    runs, start = [], epochs[0]
    for previous, current in zip(epochs, epochs[1:] + [None]):
        if current != previous + 1:
            runs.append(str(start) if start == previous else f"{start}-{previous}")
            start = current
    return f"it holds epochs {', '.join(runs)}"


def _integrity_problem(path: Path) -> Optional[str]:
    """Why ``path`` is not a complete ``torch.save`` archive, or None when it is.

    Checks the zip structure and every member's CRC, which catches truncated and corrupted
    files without unpickling anything.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                return f"member {bad} fails its CRC check"
            if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist()):
                return "not a torch.save archive (no data.pkl)"
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def find_latest_valid(output_dir: os.PathLike) -> Optional[Path]:
    """The newest readable checkpoint in ``output_dir``, or None.

    Newer files that are truncated or unreadable are reported and skipped.
    """
    for path in reversed(list_checkpoints(output_dir)):
        problem = _integrity_problem(path)
        if problem is None:
            return path
        logger.warning(f"skipping unreadable checkpoint {path} ({problem})")
    return None


def prune(output_dir: os.PathLike, keep_last_n: int) -> List[Path]:
    """Delete all but the newest ``keep_last_n`` checkpoints (0 keeps all); return the deleted."""
    if keep_last_n <= 0:
        return []
    doomed = list_checkpoints(output_dir)[:-keep_last_n]
    for path in doomed:
        path.unlink()
    return doomed


def capture_rng_state() -> Dict[str, Any]:
    """python, numpy, torch (and CUDA) RNG states in a ``weights_only``-loadable form."""
    import numpy as np
    import torch

    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
