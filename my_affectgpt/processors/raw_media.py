"""One sample's raw media as encoder inputs: the single place that turns files into pixels and waves.

Every consumer reads media through :class:`RawMediaReader`, so the model's encoder path
(``skip_encoders: False``), the pre-extracted ``.npy`` files, single-clip inference and the
trace script see exactly the same inputs:

* the dataset and single-clip inference through :func:`encoder_inputs` (``frame_pixels`` /
  ``face_pixels`` float32 ``[n, 3, S, S]`` CLIP-normalised, ``audio_wave`` float32
  ``[clips_per_video, 32000]``);
* ``extract_multimodal_features_precompute.py`` through :meth:`RawMediaReader.read` (it moves
  the uint8 frames between processes, a quarter of the bytes, and normalises them where it
  encodes).

Rules:

* Frames are chosen by ``frame_sampling``, face crops by ``face_sampling`` (uniform by default,
  as in the original AffectGPT), each through a
  :class:`~my_affectgpt.processors.frame_sampling.FrameSampler`. A video or crop sequence
  with fewer frames than asked for still gives that many rows: the sampled
  indices are repeated in time order (row ``i`` of ``n`` takes sampled index
  ``i * len // n``), so every row is a real frame and the sequence stays ordered.
* A sample name resolves to the first existing ``{root}/{name}`` + one of ``MEDIA_EXTS``.
* Audio comes from the audio root when one is in use (for the dataset: ``audio_root`` when
  configured, else its default audio folder when that exists), otherwise from the video
  file's own audio stream; it is decoded to 16 kHz mono and cut into ``clips_per_video`` clips
  of 2 s (``processors.media.split_audio_clips``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Tuple

from my_affectgpt.processors.frame_sampling import FrameSampler
from my_affectgpt.processors.media import (
    AUDIO_EXTS,
    VIDEO_EXTS,
    MediaError,
    clip_normalize,
    load_face_crops,
    read_audio,
    read_video_frames,
    resolve_media_path,
    split_audio_clips,
)

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("my_affectgpt")

MEDIA_EXTS = VIDEO_EXTS + AUDIO_EXTS
AUDIO_SAMPLE_RATE = 16000
CLIP_SECONDS = 2.0


class SampleMediaError(MediaError):
    """One sample's media could not be read; ``folder`` is where they were looked for."""

    def __init__(self, name: str, folder, reason: str):
        self.name, self.folder, self.reason = name, folder, reason
        super().__init__(f"sample '{name}': {reason} ({folder})")

    def __reduce__(self):
        return (type(self), (self.name, self.folder, self.reason))


def repeat_to_length(indices: Sequence[int], n: int) -> List[int]:
    """``n`` indices: ``indices`` itself when it has ``n``, else each repeated in order."""
    indices = list(indices)
    if not indices:
        raise ValueError("cannot repeat an empty list of frame indices")
    if len(indices) == n:
        return indices
    return [indices[i * len(indices) // n] for i in range(n)]


@dataclass(frozen=True)
class SampledFrames:
    frames: "torch.Tensor"  # uint8 [n, S, S, 3], RGB
    indices: Tuple[int, ...]  # the frame (or crop) numbers behind each row
    fallback: Optional[str]  # why emotion_peak fell back to uniform sampling, else None

    def pixels(self) -> "torch.Tensor":
        """The encoder input: float32 ``[n, 3, S, S]``, CLIP-normalised."""
        return clip_normalize(self.frames)


class _FixedCountSelector:
    """The ``(num_frames, fps) -> indices`` callable the media readers take.

    Applies the sampler, pads to ``sampler.n`` rows and records the indices and whether this
    call fell back to uniform sampling (the sampler's counter grew during the call).
    """

    def __init__(self, sampler: FrameSampler, analysis):
        self.sampler = sampler
        self.analysis = analysis
        self.indices: Tuple[int, ...] = ()
        self.fallback: Optional[str] = None

    def __call__(self, num_frames: int, fps: Optional[float]) -> List[int]:
        before = dict(self.sampler.fallbacks)
        indices = self.sampler.sample(num_frames, self.analysis, video_fps=fps)
        grown = [reason for reason, count in self.sampler.fallbacks.items() if count > before.get(reason, 0)]
        self.fallback = grown[0] if grown else None
        self.indices = tuple(repeat_to_length(indices, self.sampler.n))
        return list(self.indices)


def video_frames(path, sampler: FrameSampler, analysis=None, size: int = 224) -> SampledFrames:
    """``sampler.n`` frames of the video at ``path``, decoded at ``size``."""
    import torch

    selector = _FixedCountSelector(sampler, analysis)
    video = read_video_frames(path, selector, size=size)
    return SampledFrames(torch.from_numpy(video.frames), selector.indices, selector.fallback)


def face_frames(face_root, name: str, sampler: FrameSampler, analysis=None, size: int = 224) -> SampledFrames:
    """``sampler.n`` face crops of ``name`` (``{face_root}/{name}/{name}.npy`` or images)."""
    import torch

    selector = _FixedCountSelector(sampler, analysis)
    crops = load_face_crops(face_root, name, selector, size=size)
    return SampledFrames(torch.from_numpy(crops), selector.indices, selector.fallback)


def audio_clips(path, clips_per_video: int) -> "torch.Tensor":
    """float32 ``[clips_per_video, 32000]``: 2-second 16 kHz mono clips spanning the audio.

    A tensor, as the frames are: from a DataLoader worker it travels through shared memory.
    """
    import torch

    wave, _ = read_audio(path, sr=AUDIO_SAMPLE_RATE)
    return torch.from_numpy(split_audio_clips(wave, clips_per_video, CLIP_SECONDS, AUDIO_SAMPLE_RATE))


def find_media(root, name: str) -> Path:
    """The first existing ``{root}/{name}{ext}`` over ``MEDIA_EXTS`` (MediaNotFoundError otherwise)."""
    return resolve_media_path(root, name, MEDIA_EXTS)


# -- the one reader every consumer uses ------------------------------------------------------


@dataclass(frozen=True)
class MediaSources:
    """Where one dataset's raw media live. ``audio_root`` None: a sample's audio is its video's."""

    video_root: Optional[Path] = None
    audio_root: Optional[Path] = None
    face_root: Optional[Path] = None


@dataclass(frozen=True)
class SamplingSpec:
    """How many frames, crops and clips one sample gives, and how frames and crops are chosen."""

    frame_sampling: str = "uniform"
    frame_n_frms: int = 8
    face_sampling: str = "uniform"
    face_n_frms: int = 8
    clips_per_video: int = 8
    image_size: int = 224


def load_sample_analysis(locator, name: str):
    """The sample's parsed AU JSON, completed from the OpenFace CSV beside it when the JSON has
    no per-frame data. Raises ``AUJsonNotFoundError`` / ``AUJsonError`` / ``OpenFaceCSVError``."""
    from my_affectgpt.processors.openface_csv import load_au_analysis_with_csv

    return load_au_analysis_with_csv(locator.find(name))


@dataclass
class DecodedMedia:
    """One modality of one sample as encoder input (uint8 frames or float32 clips)."""

    value: object
    indices: Tuple[int, ...] = ()  # the frames or crops behind the rows (frame/face)
    fallback: Optional[str] = None  # why emotion_peak fell back to uniform sampling


class RawMediaReader:
    """The one path from a sample's raw files to encoder inputs.

    The dataset (``model.skip_encoders: False``), the feature extractor, single-clip inference
    and the trace script all read media through it, so they sample the same frames, crops and
    clips. ``emotion_peak`` sampling takes the peaks of the sample's AU analysis (the JSON,
    completed from its OpenFace CSV); without one it falls back to uniform and counts it.
    Counts are per process: with DataLoader workers, each worker counts its own samples.
    """

    def __init__(self, sources: MediaSources, spec: SamplingSpec, au_locator=None, dataset: str = ""):
        self.sources = sources
        self.spec = spec
        self.au_locator = au_locator
        label = dataset or None
        self.frame_sampler = FrameSampler(spec.frame_sampling, spec.frame_n_frms, dataset=label)
        self.face_sampler = FrameSampler(spec.face_sampling, spec.face_n_frms, dataset=label)
        self._first_fallback_logged = False

    def needs_analysis(self, modalities: Iterable[str]) -> bool:
        """Whether reading ``modalities`` samples by AU peaks."""
        return ("frame" in modalities and self.spec.frame_sampling == "emotion_peak") or (
            "face" in modalities and self.spec.face_sampling == "emotion_peak"
        )

    def analysis(self, name: str):
        """The sample's AU analysis for peak sampling, or None when it has no JSON (fallback).
        A JSON that exists but cannot be read raises."""
        from my_affectgpt.processors.au_json import AUJsonNotFoundError

        if self.au_locator is None:
            return None
        try:
            return load_sample_analysis(self.au_locator, name)
        except AUJsonNotFoundError:
            return None

    def read(self, name: str, modality: str, analysis=None, media: Optional[Path] = None) -> DecodedMedia:
        """``frame`` / ``face``: uint8 ``[n, S, S, 3]``; ``audio``: float32 ``[clips, 32000]``.

        ``media`` is the sample's video file when it is known (a CSV path, a user's clip);
        otherwise it is looked up under the sources. Raises :class:`MediaError`.
        """
        size = self.spec.image_size
        if modality in ("frame", "face"):
            if modality == "frame":
                sampled = video_frames(media or self._find("video_root", name), self.frame_sampler, analysis, size)
            elif self.sources.face_root is None:
                raise MediaError("no face-crop folder is configured")
            else:
                sampled = face_frames(self.sources.face_root, name, self.face_sampler, analysis, size)
            if sampled.fallback and not self._first_fallback_logged:
                self._first_fallback_logged = True  # the totals come from fallback_reports()
                self.fallback_reports()
            return DecodedMedia(sampled.frames, sampled.indices, sampled.fallback)
        if modality == "audio":
            if self.sources.audio_root is not None:
                path = find_media(self.sources.audio_root, name)
            else:
                path = media or self._find("video_root", name)
            return DecodedMedia(audio_clips(path, self.spec.clips_per_video))
        raise ValueError(f"unknown raw modality {modality!r}; expected frame, face or audio")

    def _find(self, root_key: str, name: str) -> Path:
        root = getattr(self.sources, root_key)
        if root is None:
            raise MediaError(f"no {root_key.replace('_', ' ')} is configured to find '{name}' in")
        return find_media(root, name)

    def folder(self, modality: str) -> Optional[Path]:
        """Where ``modality`` is looked for, for messages."""
        if modality == "face":
            return self.sources.face_root
        if modality == "audio" and self.sources.audio_root is not None:
            return self.sources.audio_root
        return self.sources.video_root

    def fallback_reports(self) -> List[str]:
        """The uniform-fallback line of each sampler that fell back (logged when new)."""
        return [line for line in (self.frame_sampler.report(), self.face_sampler.report()) if line]


ENCODER_KEYS = {"frame": "frame_pixels", "face": "face_pixels", "audio": "audio_wave"}


def encoder_inputs(reader: RawMediaReader, name: str, modalities: Iterable[str], media: Optional[Path] = None) -> Dict:
    """``frame_pixels`` / ``face_pixels`` (float32, CLIP-normalised) / ``audio_wave`` for the
    model's encoders. Unusable media raise :class:`SampleMediaError` naming modality and folder."""
    modalities = list(modalities)
    analysis = reader.analysis(name) if reader.needs_analysis(modalities) else None
    out: Dict = {}
    for modality in modalities:
        try:
            decoded = reader.read(name, modality, analysis, media)
        except MediaError as err:
            raise SampleMediaError(name, reader.folder(modality) or media, f"{modality}: {err}") from None
        value = decoded.value
        out[ENCODER_KEYS[modality]] = clip_normalize(value) if modality in ("frame", "face") else value
    return out
