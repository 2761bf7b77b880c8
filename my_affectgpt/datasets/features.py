"""Pre-extracted feature files: one reader for the dataset and the extractor's resume check."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np


class FeatureFileError(ValueError):
    """A feature file that cannot be used; the message says why (not where: callers add that)."""


def read_feature_matrix(path: Path, rows: Optional[int] = None, require_float32: bool = False) -> np.ndarray:
    """A finite ``[rows, width]`` matrix from a ``.npy`` file, never unpickled.

    ``rows`` None accepts any row count (AU features have one row per description).
    """
    path = Path(path)
    if not path.is_file():
        raise FeatureFileError("feature file not found")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise FeatureFileError(f"unreadable feature file ({exc})") from None
    if array.ndim != 2 or (require_float32 and array.dtype != np.float32):
        raise FeatureFileError(f"holds {array.dtype} {list(array.shape)}, expected a float32 [rows, width] matrix")
    if rows is not None and array.shape[0] != rows:
        raise FeatureFileError(f"has {array.shape[0]} rows, expected {rows}")
    if not np.isfinite(array).all():
        raise FeatureFileError("features contain NaN or inf")
    return array


def feature_problem(path: Path, rows: Optional[int]) -> Optional[str]:
    """Why ``path`` is not a valid extractor output (float32, finite, ``rows`` rows), or None."""
    try:
        read_feature_matrix(path, rows, require_float32=True)
    except FeatureFileError as exc:
        return str(exc)
    return None
