"""Decoding one sample's inputs for every pending modality (runs in DataLoader workers).

A failure never escapes: each modality that cannot be decoded gets a one-line reason and
the sample's other modalities go on. Any exception counts, not only the media errors the
readers raise, because one odd file must not stop a run over tens of thousands.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from my_affectgpt.processors.frame_sampling import FrameSampler
from my_affectgpt.processors.raw_media import audio_clips, audio_source, face_frames, find_media, video_frames
from my_affectgpt.extraction.samples import SampleRef


@dataclass(frozen=True)
class DecodeSettings:
    video_root: Optional[Path]
    audio_root: Optional[Path]
    face_root: Optional[Path]
    au_locator: Optional[object]  # AUJsonLocator, or None without --mer-factory-output
    frame_sampling: str
    frame_n_frms: int
    clips_per_video: int
    image_size: int = 224


@dataclass(frozen=True)
class Job:
    ref: SampleRef
    modalities: Tuple[str, ...]  # the ones whose output is missing or invalid


@dataclass
class DecodedSample:
    name: str
    inputs: Dict[str, object] = field(default_factory=dict)  # modality -> encoder input
    errors: Dict[str, str] = field(default_factory=dict)  # modality -> why it failed
    fallback: Optional[str] = None  # why emotion_peak fell back to uniform sampling


def _reason(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _load_analysis(name: str, settings: DecodeSettings):
    """``(analysis, problem, unreadable)``: the parsed AU JSON, or None with why, and whether
    the JSON exists but cannot be read (missing ones only make emotion_peak fall back)."""
    from my_affectgpt.processors.au_json import AUJsonError, load_au_analysis

    if settings.au_locator is None:
        return None, "no --mer-factory-output given", False
    path = settings.au_locator.path(name)
    if not path.is_file():
        return None, f"AU JSON not found: {path}", False
    try:
        return load_au_analysis(path), None, False
    except AUJsonError as err:
        return None, str(err), True


def _media_path(job: Job, settings: DecodeSettings) -> Path:
    if job.ref.media is not None:
        return job.ref.media
    if settings.video_root is None:
        raise ValueError("no --video_root given to find the video in")
    return find_media(settings.video_root, job.ref.name)


def _decode_modality(modality: str, job: Job, settings: DecodeSettings, sampler: FrameSampler, analysis):
    """(encoder input, uniform-fallback reason) for one modality."""
    name = job.ref.name
    if modality == "frame":
        sampled = video_frames(_media_path(job, settings), sampler, analysis, settings.image_size)
        return sampled.frames, sampled.fallback
    if modality == "face":
        if settings.face_root is None:
            raise ValueError("no --face_root given to read face crops from")
        sampled = face_frames(settings.face_root, name, sampler, analysis, settings.image_size)
        return sampled.frames, sampled.fallback
    if modality == "audio":
        if settings.audio_root is None:
            path = _media_path(job, settings)
        else:
            path = audio_source(name, settings.audio_root, None)
        return audio_clips(path, settings.clips_per_video), None
    raise ValueError(f"unknown modality {modality!r}")


def decode_sample(job: Job, settings: DecodeSettings, sampler: FrameSampler) -> DecodedSample:
    """Inputs for ``job.modalities``; failures are recorded per modality, never raised."""
    from my_affectgpt.extraction.au import au_summary_texts

    sample = DecodedSample(name=job.ref.name)
    if job.ref.problem:
        sample.errors = {modality: job.ref.problem for modality in job.modalities}
        return sample
    visual = [m for m in job.modalities if m in ("frame", "face")]
    needs_analysis = "au" in job.modalities or (visual and settings.frame_sampling == "emotion_peak")
    analysis, analysis_problem, unreadable = (
        _load_analysis(job.ref.name, settings) if needs_analysis else (None, None, False)
    )
    for modality in job.modalities:
        try:
            if modality == "au":
                if analysis is None:
                    raise (ValueError if unreadable else FileNotFoundError)(analysis_problem)
                sample.inputs["au"] = au_summary_texts(analysis, analysis.path)
                continue
            if modality in visual and unreadable:
                raise ValueError(f"emotion_peak sampling needs the sample's AU JSON: {analysis_problem}")
            sample.inputs[modality], fallback = _decode_modality(modality, job, settings, sampler, analysis)
            sample.fallback = sample.fallback or fallback
        except Exception as err:  # noqa: BLE001 - per-sample isolation, see the module docstring
            sample.errors[modality] = _reason(err)
    return sample


class DecodeDataset:
    """A map-style dataset over jobs for ``torch.utils.data.DataLoader`` (used unbatched)."""

    def __init__(self, jobs: Sequence[Job], settings: DecodeSettings):
        self.jobs = list(jobs)
        self.settings = settings
        self.sampler = FrameSampler(settings.frame_sampling, settings.frame_n_frms)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> DecodedSample:
        return decode_sample(self.jobs[index], self.settings, self.sampler)


def is_worker_crash(err: BaseException) -> bool:
    """A DataLoader worker died (a native decoder crash, the OOM killer). torch raises this in
    the main process, possibly asynchronously from its SIGCHLD handler, wherever it is."""
    return isinstance(err, RuntimeError) and "DataLoader worker" in str(err)
