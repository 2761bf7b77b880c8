"""Pre-extracted feature files: where they live (one naming rule for the dataset, the
extractor and the demo) and one reader for the dataset and the extractor's resume check.

    {root}/frame_{VISUAL}_{n}frms/{name}.npy    [n, visual width]
    {root}/face_{VISUAL}_{m}frms/{name}.npy     [m, visual width]  (m: face frames)
    {root}/audio_{ACOUSTIC}_{c}clips/{name}.npy [c, acoustic width]
    {root}/au_CLIP_VITB32_8frms/{name}.npy      [N, 512] (one row per AU description)

``root`` is a dataset block's ``preextracted_root``, the extractor's ``{save_root}/{dataset}``.
Readers also accept the frame folder as the original AffectGPT names it,
``frame_{VISUAL}_{sampling}_{n}frms`` (e.g. ``frame_CLIP_VIT_LARGE_emotion_peak_8frms``), and
prefer it when both exist, since it names the frame sampling the block asks for.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

import numpy as np

from my_affectgpt.common.errors import UserFileNotFoundError
from my_affectgpt.datasets.errors import BadSampleError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("my_affectgpt")

AU_FEATURE_FOLDER = "au_CLIP_VITB32_8frms"
# The model config key giving the width each modality's features must have.
WIDTH_KEYS = {
    "frame": "preextracted_visual_dim",
    "face": "preextracted_visual_dim",
    "audio": "preextracted_acoustic_dim",
    "au": "preextracted_au_dim",
}
# The dataset block keys that make up each modality's folder name, for error messages.
_FOLDER_KEYS = {
    "frame": "visual_encoder, frame_sampling, frame_n_frms",
    "face": "visual_encoder and the face frame count",
    "audio": "acoustic_encoder, clips_per_video",
    "au": "preextracted_root",
}


class FeatureFolderNotFoundError(UserFileNotFoundError):
    """None of the folder names a modality's features may have exists."""


@dataclass(frozen=True)
class FeatureLayout:
    root: Path
    visual_encoder: str
    acoustic_encoder: str
    frame_n_frms: int
    clips_per_video: int
    frame_sampling: str = "uniform"
    face_n_frms: Optional[int] = None  # None: frame_n_frms
    _reported: set = field(default_factory=set, init=False, compare=False, repr=False)

    @property
    def face_frames(self) -> int:
        return self.frame_n_frms if self.face_n_frms is None else self.face_n_frms

    def folder(self, modality: str) -> Path:
        """The folder the extractor writes ``modality`` to."""
        names = {
            "frame": f"frame_{self.visual_encoder}_{self.frame_n_frms}frms",
            "face": f"face_{self.visual_encoder}_{self.face_frames}frms",
            "audio": f"audio_{self.acoustic_encoder}_{self.clips_per_video}clips",
            "au": AU_FEATURE_FOLDER,
        }
        return Path(self.root) / names[modality]

    def path(self, modality: str, name: str) -> Path:
        return self.folder(modality) / f"{name}.npy"

    def folders(self, modality: str) -> List[Path]:
        """The folders a reader accepts for ``modality``, preferred first."""
        if modality == "frame":
            exact = f"frame_{self.visual_encoder}_{self.frame_sampling}_{self.frame_n_frms}frms"
            return [Path(self.root) / exact, self.folder("frame")]
        return [self.folder(modality)]

    def locate(self, modality: str, name: str) -> Path:
        """The file a reader loads for sample ``name``: in the first of ``folders`` that exists.

        Raises ``FeatureFolderNotFoundError`` naming every folder tried when none exists.
        """
        candidates = self.folders(modality)
        existing = [folder for folder in candidates if folder.is_dir()]
        if not existing:
            root = Path(self.root)
            present = sorted(p.name for p in root.glob(f"{modality}_*") if p.is_dir()) if root.is_dir() else []
            raise FeatureFolderNotFoundError(
                f"no {modality} feature folder: tried {', '.join(str(f) for f in candidates)}"
                + (f" (found: {', '.join(present)})" if present else "")
                + f"; check preextracted_root and {_FOLDER_KEYS[modality]}, or extract the features"
            )
        if len(existing) > 1 and modality not in self._reported:
            self._reported.add(modality)
            logger.debug("%s: both %s and %s exist; reading %s (it names frame_sampling %r)",
                         self.root, existing[0].name, existing[1].name, existing[0].name, self.frame_sampling)
        return existing[0] / f"{name}.npy"

    def rows(self, modality: str) -> Optional[int]:
        """Rows every file of ``modality`` has (None: varies per sample)."""
        return {"frame": self.frame_n_frms, "face": self.face_frames, "audio": self.clips_per_video}.get(modality)


def expected_width(model_cfg, modality: str) -> Tuple[int, str]:
    """The feature width the model expects for ``modality`` and the config key that sets it."""
    key = WIDTH_KEYS[modality]
    return getattr(model_cfg, key), f"model.{key}"


class FeatureFileError(ValueError):
    """A feature file that cannot be used; the message says why (not where: callers add that)."""


def read_feature_matrix(
    path: Path,
    rows: Optional[int] = None,
    require_float32: bool = False,
    width: Optional[int] = None,
    width_key: str = "",
) -> np.ndarray:
    """A finite numeric ``[rows, width]`` matrix from a ``.npy`` file, never unpickled.

    ``rows`` None accepts any row count (AU features have one row per description); ``width``
    None any width. ``width_key`` names the setting ``width`` comes from, for the message.
    """
    path = Path(path)
    if not path.is_file():
        raise FeatureFileError("feature file not found")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise FeatureFileError(f"unreadable feature file ({exc})") from None
    numeric = array.dtype.kind in "fiu"
    if not numeric or array.ndim != 2 or (require_float32 and array.dtype != np.float32):
        raise FeatureFileError(f"holds {array.dtype} {list(array.shape)}, expected a float32 [rows, width] matrix")
    if rows is not None and array.shape[0] != rows:
        raise FeatureFileError(f"has {array.shape[0]} rows, expected {rows}")
    if width is not None and array.shape[1] != width:
        source = f" ({width_key})" if width_key else ""
        raise FeatureFileError(f"has width {array.shape[1]}, expected {width}{source}")
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


def load_feature_npy(
    name: str,
    path: Path,
    expected_rows: Optional[int] = None,
    expected_width: Optional[int] = None,
    width_key: str = "",
) -> "torch.Tensor":
    """A float32 [rows, width] feature tensor; never unpickles. A file of another dtype, shape
    or width, or with NaN/inf, is a ``BadSampleError`` naming the sample and the file."""
    import torch

    try:
        array = read_feature_matrix(path, expected_rows, width=expected_width, width_key=width_key)
    except FeatureFileError as exc:
        raise BadSampleError(name, path, str(exc)) from None
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
