"""One sample's raw media as encoder inputs: the single place that turns files into pixels and waves.

Both consumers call the functions below, so the model's encoder path (``skip_encoders:
False``) and the pre-extracted ``.npy`` files see exactly the same inputs:

* the dataset, through :func:`load_raw_media` (``frame_pixels`` / ``face_pixels`` float32
  ``[frame_n_frms, 3, S, S]`` CLIP-normalised, ``audio_wave`` float32
  ``[clips_per_video, 32000]``);
* ``extract_multimodal_features_precompute.py``, through :func:`video_frames`,
  :func:`face_frames`, :func:`audio_clips` and the path rules (it moves the uint8 frames
  between processes, a quarter of the bytes, and normalises them where it encodes).

Rules:

* Frames and face crops are chosen by the dataset's ``frame_sampling`` strategy
  (:class:`~my_affectgpt.processors.frame_sampling.FrameSampler`). A video or crop sequence
  with fewer frames than ``frame_n_frms`` still gives ``frame_n_frms`` rows: the sampled
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
from typing import TYPE_CHECKING, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

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


def audio_source(name: str, audio_root: Optional[Path], video_root: Optional[Path]) -> Path:
    """The file whose audio a sample uses: under ``audio_root`` when given, else its video."""
    if audio_root is not None:
        return find_media(audio_root, name)
    if video_root is None:
        raise MediaError(f"sample '{name}': no audio root and no video root to take its audio from")
    return find_media(video_root, name)


# -- the dataset's entry point ---------------------------------------------------------------

_SAMPLERS: Dict[Tuple[str, str, int], FrameSampler] = {}


def frame_sampler_for(ds_cfg) -> FrameSampler:
    """One FrameSampler per (dataset root, strategy, frame count) and process, so fallbacks add up."""
    key = (str(ds_cfg.data_root), ds_cfg.frame_sampling, int(ds_cfg.frame_n_frms))
    if key not in _SAMPLERS:
        _SAMPLERS[key] = FrameSampler(ds_cfg.frame_sampling, ds_cfg.frame_n_frms, dataset=str(ds_cfg.data_root) or None)
    return _SAMPLERS[key]


def sampling_reports() -> List[str]:
    """The uniform-fallback line of every sampler this process used (logged when new)."""
    return [line for line in (sampler.report() for sampler in _SAMPLERS.values()) if line]


def _audio_root(ds_cfg, roots: Mapping[str, Path]) -> Optional[Path]:
    """The configured audio root; the default one only when that folder exists."""
    if ds_cfg.audio_root or Path(roots["audio"]).is_dir():
        return Path(roots["audio"])
    return None


def _load_one(ds_cfg, name: str, modality: str, sampler: FrameSampler, analysis,
              roots) -> Tuple[str, object, Optional[str]]:
    """(sample key, tensor, uniform-fallback reason) for one modality."""
    size = int(ds_cfg.image_size)
    if modality == "frame":
        sampled = video_frames(find_media(roots["video"], name), sampler, analysis, size)
        return "frame_pixels", sampled.pixels(), sampled.fallback
    if modality == "face":
        sampled = face_frames(roots["face"], name, sampler, analysis, size)
        return "face_pixels", sampled.pixels(), sampled.fallback
    if modality == "audio":
        path = audio_source(name, _audio_root(ds_cfg, roots), Path(roots["video"]))
        return "audio_wave", audio_clips(path, int(ds_cfg.clips_per_video)), None
    raise ValueError(f"unknown raw modality {modality!r}; expected frame, face or audio")


def load_raw_media(ds_cfg, name: str, modalities: Iterable[str], analysis, roots: Mapping[str, Path]) -> Dict:
    """``frame_pixels`` / ``face_pixels`` / ``audio_wave`` for the ``modalities`` asked for.

    ``roots`` maps ``video``, ``audio`` and ``face`` to their folders (already resolved from
    the config). ``analysis`` is the sample's AU analysis for ``emotion_peak`` sampling
    (None: uniform fallback, counted; the first fallback is logged at once, the totals by
    :func:`sampling_reports`). Unusable media raise :class:`SampleMediaError` naming the
    modality and the folder searched, so the dataset can apply its ``on_bad_sample`` policy.
    """
    sampler = frame_sampler_for(ds_cfg)
    out: Dict = {}
    for modality in modalities:
        try:
            key, value, fallback = _load_one(ds_cfg, name, modality, sampler, analysis, roots)
        except MediaError as err:
            folder = {"face": roots["face"], "audio": _audio_root(ds_cfg, roots)}.get(modality) or roots["video"]
            raise SampleMediaError(name, folder, f"{modality}: {err}") from None
        out[key] = value
        if fallback and sum(sampler.fallbacks.values()) == 1:
            sampler.report()
    return out
