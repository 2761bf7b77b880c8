"""Training checkpoints: atomic writes, safe loading, finding the newest good one, pruning.

A checkpoint is ``{output_dir}/checkpoint_{epoch:06d}.pth`` (epoch 0-based, as in LAVIS and
AffectGPT). It is loaded with ``weights_only=True``, so it may only hold tensors, plain
containers, numbers and strings: RNG states are stored as tensors/lists and the config as a
YAML string. It is written to a temporary file in the same folder and renamed over the target,
so a run killed while saving leaves the previous file intact.
"""
from __future__ import annotations

import logging
import os
import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from my_affectgpt.common.atomic import write_file_atomic
from my_affectgpt.common.errors import UserError

logger = logging.getLogger("my_affectgpt")

CHECKPOINT_RE = re.compile(r"^checkpoint_(\d{6,})\.pth$")


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


def checkpoint_path(output_dir: os.PathLike, epoch: int) -> Path:
    return Path(output_dir) / f"checkpoint_{epoch:06d}.pth"


def save_checkpoint(state: Dict[str, Any], path: os.PathLike) -> None:
    import torch

    write_file_atomic(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: os.PathLike) -> Dict[str, Any]:
    """Load a checkpoint onto the CPU with ``weights_only=True``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
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
    """``checkpoint_*.pth`` files in ``output_dir``, oldest epoch first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


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


_ANY_CHECKPOINT_RE = re.compile(r"^checkpoint_(\d{6,})(?:_loss_[^/]*)?\.pth$")


def checkpoint_epochs(folder: os.PathLike) -> List[int]:
    """Epoch numbers of the checkpoints in ``folder`` (this project's and the original's naming)."""
    folder = Path(folder)
    return sorted({int(m.group(1)) for p in folder.iterdir() if (m := _ANY_CHECKPOINT_RE.match(p.name))})


def find_epoch_checkpoint(folder: os.PathLike, epoch: int) -> Path:
    """The checkpoint of ``epoch`` in ``folder`` under either naming."""
    folder = Path(folder)
    found = [p for p in folder.iterdir() if (m := _ANY_CHECKPOINT_RE.match(p.name)) and int(m.group(1)) == epoch]
    if len(found) != 1:
        raise CheckpointError(
            f"{folder}: {len(found) or 'no'} checkpoint(s) of epoch {epoch} (checkpoint_{epoch:06d}.pth or "
            f"checkpoint_{epoch:06d}_loss_*.pth){': ' + ', '.join(p.name for p in found) if found else ''}"
        )
    return found[0]
