"""Which checkpoints to use, and loading their trained weights into a model: the one place.

Training (warm start from ``model.ckpt``, ``ckpt_2``, ``ckpt_3``), inference
(``inference.ckpt`` / ``ckpt_root`` / ``ckpt_name`` + ``test_epoch(s)``), the export script
and the trace script all come here. A checkpoint is one of:

* a runner checkpoint of this project (``checkpoint_000030.pth``),
* a checkpoint written by the original AffectGPT runner (``checkpoint_000030_loss_0.602.pth``:
  a dict whose ``model`` holds the trainable weights under the original names),
* a folder written by ``scripts/export_model.py``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import List, Optional, Tuple

from my_affectgpt.common import checkpoint as ckpt
from my_affectgpt.common.errors import UserError, UserFileNotFoundError

logger = logging.getLogger("my_affectgpt")

WARM_START_KEYS = ("ckpt", "ckpt_2", "ckpt_3")
_EPOCH_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


class WarmStartError(UserError, ValueError):
    """A warm-start checkpoint that fits none of the model's trainable weights."""


def load_trained_weights(model, path, strict: bool = True) -> Tuple[List[str], List[str]]:
    """Load trainable weights from a checkpoint file or an exported folder into ``model``;
    returns the ``(missing, unexpected)`` weight names (an export must match exactly)."""
    path = Path(path)
    if path.is_dir():
        model.load_export(path)
        return [], []
    return model.load_trainable_state_dict(ckpt.load_checkpoint(path)["model"], strict=strict)


def warm_start(model, model_cfg) -> None:
    """Load ``model.ckpt``, ``ckpt_2``, ``ckpt_3`` in that order (later ones win).

    A checkpoint that holds none of the model's trainable weights is an error (it was written
    for another model) unless ``model.partial_warm_start`` is set.
    """
    for key in WARM_START_KEYS:
        path = getattr(model_cfg, key)
        if not path:
            continue
        if not Path(path).exists():
            raise UserFileNotFoundError(f"model.{key}: checkpoint not found: {path}")
        trainable = len(model.trainable_state_dict())
        missing, unexpected = load_trained_weights(model, path, strict=False)
        if trainable and len(missing) == trainable and not model_cfg.partial_warm_start:
            raise WarmStartError(
                f"model.{key}: {path} holds none of this model's {trainable} trainable weights "
                f"({len(unexpected)} other weights, e.g. {', '.join(unexpected[:3]) or 'none'}); it was written for "
                f"another model or config. Check model.{key}, or set model.partial_warm_start: True to continue"
            )
        logger.info("warm start from %s (model.%s): %d trainable tensors not in it, %d unused",
                    path, key, len(missing), len(unexpected))


def _epochs(inf) -> List[int]:
    """The epochs ``test_epoch`` / ``test_epochs`` name (numbered from 1)."""
    if inf.test_epoch is not None:
        return [inf.test_epoch]
    match = _EPOCH_RANGE.match(str(inf.test_epochs))
    if not match:
        raise UserError(f"inference.test_epochs must look like '30-60', got {inf.test_epochs!r}")
    first, last = int(match.group(1)), int(match.group(2))
    if last < first:
        raise UserError(f"inference.test_epochs {inf.test_epochs!r}: the first epoch is after the last")
    # as in the original: the epochs of the range that are multiples of skip_epoch
    chosen = [e for e in range(first, last + 1) if e % inf.skip_epoch == 0]
    if not chosen:
        raise UserError(f"inference.test_epochs {inf.test_epochs!r} has no epoch divisible by "
                        f"inference.skip_epoch ({inf.skip_epoch})")
    return chosen


def checkpoint_root(cfg) -> Optional[Path]:
    """``inference.ckpt_root``, else the original's ``output/<config stem>/<ckpt_name>``."""
    inf = cfg.inference
    if inf.ckpt_root:
        return Path(inf.ckpt_root)
    if inf.ckpt_name:
        stem = Path(cfg.source).stem if cfg.source else ""
        return Path("output") / stem / inf.ckpt_name
    return None


def resolve_checkpoints(cfg) -> List[Tuple[str, Path]]:
    """``(ckpt_name, path)`` pairs inference runs, from ``inference.ckpt`` or a checkpoint
    folder plus ``test_epoch(s)``."""
    inf = cfg.inference
    if inf.ckpt:
        path = Path(inf.ckpt)
        if not path.exists():
            raise UserFileNotFoundError(f"inference.ckpt: {path} not found")
        return [(path.stem if path.is_file() else path.name, path)]
    root = checkpoint_root(cfg)
    if root is None:
        raise UserError(
            "no checkpoint chosen: set inference.ckpt (a checkpoint file or an exported folder), or "
            "inference.ckpt_root (with test_epoch or test_epochs; neither = the last epoch)"
        )
    if not root.is_dir():
        raise UserFileNotFoundError(f"checkpoint folder not found: {root} (inference.ckpt_root / ckpt_name)")
    if inf.test_epoch is None and not inf.test_epochs:  # as in the original: the last epoch
        chosen = [ckpt.find_last_checkpoint(root)]
    else:
        chosen = [ckpt.find_epoch_checkpoint(root, epoch) for epoch in _epochs(inf)]
    return [(path.stem, path) for path in chosen]
