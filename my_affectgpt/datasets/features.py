"""Pre-extracted feature files: where they live (one naming rule for the dataset, the
extractor and the demo) and one reader for the dataset and the extractor's resume check.

    {root}/frame_{VISUAL}_{n}frms/{name}.npy    [n, visual width]
    {root}/face_{VISUAL}_{n}frms/{name}.npy     [n, visual width]
    {root}/audio_{ACOUSTIC}_{c}clips/{name}.npy [c, acoustic width]
    {root}/au_CLIP_VITB32_8frms/{name}.npy      [N, 512] (one row per AU description)

``root`` is a dataset block's ``preextracted_root``, the extractor's ``{save_root}/{dataset}``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from my_affectgpt.datasets.errors import BadSampleError

if TYPE_CHECKING:
    import torch

AU_FEATURE_FOLDER = "au_CLIP_VITB32_8frms"


@dataclass(frozen=True)
class FeatureLayout:
    root: Path
    visual_encoder: str
    acoustic_encoder: str
    frame_n_frms: int
    clips_per_video: int

    def folder(self, modality: str) -> Path:
        names = {
            "frame": f"frame_{self.visual_encoder}_{self.frame_n_frms}frms",
            "face": f"face_{self.visual_encoder}_{self.frame_n_frms}frms",
            "audio": f"audio_{self.acoustic_encoder}_{self.clips_per_video}clips",
            "au": AU_FEATURE_FOLDER,
        }
        return Path(self.root) / names[modality]

    def path(self, modality: str, name: str) -> Path:
        return self.folder(modality) / f"{name}.npy"

    def rows(self, modality: str) -> Optional[int]:
        """Rows every file of ``modality`` has (None: varies per sample)."""
        return {"frame": self.frame_n_frms, "face": self.frame_n_frms, "audio": self.clips_per_video}.get(modality)


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


def load_feature_npy(name: str, path: Path, expected_rows: Optional[int] = None) -> "torch.Tensor":
    """A float32 [rows, width] feature tensor; never unpickles. Problems name the sample and file."""
    import torch

    try:
        array = read_feature_matrix(path, expected_rows)
    except FeatureFileError as exc:
        raise BadSampleError(name, path, str(exc)) from None
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
