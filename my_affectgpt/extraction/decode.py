"""Decoding one sample's inputs for every pending modality (runs in DataLoader workers).

A failure never escapes: each modality that cannot be decoded gets a one-line reason and
the sample's other modalities go on. Any exception counts, not only the media errors the
readers raise, because one odd file must not stop a run over tens of thousands.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

from my_affectgpt.extraction.samples import SampleRef
from my_affectgpt.processors.raw_media import MediaSources, RawMediaReader, SamplingSpec, load_sample_analysis


@dataclass(frozen=True)
class DecodeSettings:
    sources: MediaSources
    spec: SamplingSpec
    au_locator: Optional[object]  # AUJsonLocator, or None without --mer-factory-output


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


def _load_analysis(name: str, locator):
    """``(analysis, problem, unreadable)``: the parsed AU JSON (completed from its OpenFace
    CSV), or None with why, and whether it exists but cannot be read (a missing one only
    makes emotion_peak fall back)."""
    from my_affectgpt.processors.au_json import AUJsonNotFoundError

    if locator is None:
        return None, "no --mer-factory-output given", False
    try:
        return load_sample_analysis(locator, name), None, False
    except AUJsonNotFoundError as err:
        return None, str(err), False
    except ValueError as err:  # AUJsonError, OpenFaceCSVError
        return None, str(err), True


def decode_sample(job: Job, reader: RawMediaReader) -> DecodedSample:
    """Inputs for ``job.modalities``; failures are recorded per modality, never raised."""
    from my_affectgpt.extraction.au import au_summary_texts

    sample = DecodedSample(name=job.ref.name)
    if job.ref.problem:
        sample.errors = {modality: job.ref.problem for modality in job.modalities}
        return sample
    visual = [m for m in job.modalities if m in ("frame", "face")]
    needs_analysis = "au" in job.modalities or reader.needs_analysis(visual)
    analysis, analysis_problem, unreadable = (
        _load_analysis(job.ref.name, reader.au_locator) if needs_analysis else (None, None, False)
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
            decoded = reader.read(job.ref.name, modality, analysis, media=job.ref.media)
            sample.inputs[modality] = decoded.value
            sample.fallback = sample.fallback or decoded.fallback
        except Exception as err:  # noqa: BLE001 - per-sample isolation, see the module docstring
            sample.errors[modality] = _reason(err)
    return sample


class DecodeDataset:
    """A map-style dataset over jobs for ``torch.utils.data.DataLoader`` (used unbatched)."""

    def __init__(self, jobs: Sequence[Job], settings: DecodeSettings):
        self.jobs = list(jobs)
        self.reader = RawMediaReader(settings.sources, settings.spec, settings.au_locator)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> DecodedSample:
        return decode_sample(self.jobs[index], self.reader)


def is_worker_crash(err: BaseException) -> bool:
    """A DataLoader worker died (a native decoder crash, the OOM killer). torch raises this in
    the main process, possibly asynchronously from its SIGCHLD handler, wherever it is."""
    return isinstance(err, RuntimeError) and "DataLoader worker" in str(err)
