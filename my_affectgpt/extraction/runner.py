"""One extraction run: list samples, skip finished ones, decode in workers, encode in batches, write.

Resumable: a sample's output is skipped when a valid one exists (``datasets.features.feature_problem``);
outputs are written atomically, so a killed run leaves at most temp files, which the next
run of the same shard deletes. Failures are per sample and modality and go to the report.

A decoder that crashes its worker process (a native crash on a damaged file) costs only that
sample: the loader is restarted and the next batch is decoded one sample per worker process,
which finds the file. With ``num_workers: 0`` decoding runs in the main process, unprotected.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import List, Optional, Tuple

from my_affectgpt.common.errors import UserError, UserFileNotFoundError
from my_affectgpt.common.atomic import remove_stale_temps, save_npy_atomic
from my_affectgpt.datasets.features import feature_problem
from my_affectgpt.extraction.decode import DecodeDataset, DecodeSettings, DecodedSample, Job, is_worker_crash
from my_affectgpt.extraction.encode import EncoderSpec, FeatureEncoders
from my_affectgpt.extraction.layout import MODALITIES, OutputLayout
from my_affectgpt.extraction.report import ExtractionReport, merge_report_files
from my_affectgpt.processors.raw_media import MediaSources, SamplingSpec
from my_affectgpt.extraction.samples import (
    SampleRef,
    list_media_names,
    list_subfolders,
    read_sample_csv,
    take_shard,
    unique,
)

logger = logging.getLogger("my_affectgpt")


@dataclass(frozen=True)
class ExtractionSettings:
    dataset: str
    modalities: Tuple[str, ...]
    save_root: Path
    encoders: EncoderSpec
    video_root: Optional[Path] = None
    audio_root: Optional[Path] = None
    face_root: Optional[Path] = None
    mer_factory_output: Optional[Path] = None
    mer_factory_folder: Optional[str] = None  # None: the registered dataset's folder name
    csv_path: Optional[Path] = None
    csv_column: str = "name"
    frame_n_frms: int = 8
    frame_sampling: str = "uniform"
    clips_per_video: int = 8
    image_size: int = 224
    batch_size: int = 16
    num_workers: int = 4
    overwrite: bool = False
    shard_index: int = 0
    shard_count: int = 1
    progress: bool = True

    @property
    def shard(self) -> str:
        return f"{self.shard_index}/{self.shard_count}"

    @property
    def temp_tag(self) -> str:
        return f"shard{self.shard_index}of{self.shard_count}"

    def layout(self) -> OutputLayout:
        return OutputLayout(
            Path(self.save_root) / self.dataset,
            self.encoders.visual_encoder,
            self.encoders.acoustic_encoder,
            self.frame_n_frms,
            self.clips_per_video,
        )


def dataset_au_folder(dataset: str) -> str:
    """The MER-Factory folder of a registered dataset (``mercaptionplus`` -> ``MERCaptionPlus``),
    or ``dataset`` itself for one that is not registered."""
    import my_affectgpt.datasets.builders  # noqa: F401 - registers the builders
    import my_affectgpt.datasets.unibench  # noqa: F401
    from my_affectgpt.common.registry import registry

    if dataset in registry.names("builder"):
        return registry.get("builder", dataset).dataset_cls.mer_factory_folder or dataset
    return dataset


def au_locator(settings: ExtractionSettings):
    if settings.mer_factory_output is None:
        return None
    from my_affectgpt.processors.au_json import AUJsonLocator

    folder = settings.mer_factory_folder
    if folder is None:
        folder = dataset_au_folder(settings.dataset)
    return AUJsonLocator(settings.mer_factory_output, folder)


def collect_samples(settings: ExtractionSettings, locator) -> List[SampleRef]:
    """The CSV's names, else a listing of the first root given: video, audio, face, AU JSONs."""
    if settings.csv_path is not None:
        return read_sample_csv(settings.csv_path, settings.csv_column, settings.video_root)
    if settings.video_root or settings.audio_root:
        source = settings.video_root or settings.audio_root
        names = list_media_names(source)
    elif settings.face_root is not None:
        source = settings.face_root
        names = list_subfolders(source)
    elif locator is None:
        raise UserError("nothing to list samples from: give --csv_path, a media root or --mer-factory-output")
    else:
        source = locator.base
        if not source.is_dir():
            raise UserFileNotFoundError(f"AU JSON folder {source} not found; check --mer-factory-output and "
                                    "--mer_factory_folder, or give --csv_path")
        names = [name for name in list_subfolders(source) if locator.path(name).is_file()]
    if not names:
        raise UserError(f"no samples found in {source}; check the folder or give --csv_path")
    return [SampleRef(name) for name in names]


def _plan(refs: List[SampleRef], settings: ExtractionSettings, layout: OutputLayout, report: ExtractionReport):
    """Jobs for the outputs that are missing or invalid; the others are counted as skipped.

    Returns ``(jobs, invalid)`` where ``invalid`` holds the (name, modality) pairs whose
    existing file is being replaced.
    """
    jobs, invalid = [], set()
    for ref in refs:
        pending = []
        for modality in settings.modalities:
            path = layout.path(modality, ref.name)
            if ref.problem is None and not settings.overwrite and path.is_file():
                problem = feature_problem(path, layout.rows(modality))
                if problem is None:
                    report.skipped(modality)
                    continue
                logger.warning("%s: %s; extracting it again", path, problem)
                invalid.add((ref.name, modality))
            pending.append(modality)
        if pending:
            jobs.append(Job(ref, tuple(pending)))
    return jobs, invalid


def _loader(jobs: List[Job], settings: ExtractionSettings, locator):
    """Decoded samples one at a time, in job order, from ``num_workers`` processes.

    Workers hand over single samples (the encoder batches are formed afterwards), so every
    worker keeps decoding while the main process encodes, and enough samples are in flight
    to fill the next encoder batch.
    """
    from torch.utils.data import DataLoader

    decode = DecodeSettings(
        MediaSources(settings.video_root, settings.audio_root, settings.face_root),
        SamplingSpec(settings.frame_sampling, settings.frame_n_frms, "uniform", settings.frame_n_frms,
                     settings.clips_per_video, settings.image_size),
        au_locator=locator,
    )
    workers = settings.num_workers
    return DataLoader(
        DecodeDataset(jobs, decode),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=max(2, -(-2 * settings.batch_size // workers)) if workers else None,
        shuffle=False,
    )


class _Extraction:
    """The decode -> encode -> write loop of one run, with its worker-crash recovery."""

    def __init__(self, settings: ExtractionSettings, locator, encoders: FeatureEncoders, layout: OutputLayout,
                 report: ExtractionReport, invalid, bar):
        self.settings, self.locator, self.encoders = settings, locator, encoders
        self.layout, self.report, self.invalid, self.bar = layout, report, invalid, bar
        self._finished = 0  # jobs fully processed in the current pass

    def _process(self, batch: List[DecodedSample]) -> None:
        """Record decoding failures, encode each modality across the batch, write the outputs."""
        report = self.report
        for sample in batch:
            if sample.fallback:
                report.fell_back(sample.name, sample.fallback)
            for modality, reason in sample.errors.items():
                report.failed(sample.name, modality, reason)
        for modality in MODALITIES:
            todo = [s for s in batch if modality in s.inputs]
            if not todo:
                continue
            results = self.encoders.encode(modality, [s.inputs[modality] for s in todo])
            for sample, (features, reason) in zip(todo, results):
                if features is None:
                    report.failed(sample.name, modality, reason)
                    continue
                save_npy_atomic(self.layout.path(modality, sample.name), features, tag=self.settings.temp_tag)
                report.done(sample.name, modality, redone_invalid=(sample.name, modality) in self.invalid)
        self.bar.update(len(batch))

    def _pass(self, jobs: List[Job], settings: ExtractionSettings) -> None:
        """Process ``jobs`` in order, in encoder batches of ``settings.batch_size``."""
        self._finished = 0
        batch: List[DecodedSample] = []
        for sample in _loader(jobs, settings, self.locator):
            batch.append(sample)
            if len(batch) == settings.batch_size:
                self._process(batch)
                self._finished += len(batch)
                batch = []
        if batch:
            self._process(batch)
            self._finished += len(batch)

    def run(self, jobs: List[Job]) -> None:
        remaining = list(jobs)
        while remaining:
            try:
                self._pass(remaining, self.settings)
                return
            except RuntimeError as err:
                if not is_worker_crash(err):
                    raise
                remaining = remaining[self._finished:]
                suspects, remaining = remaining[: self.settings.batch_size], remaining[self.settings.batch_size:]
                logger.warning("a decoding worker died (%s); decoding the next %d sample(s) one per process",
                               err, len(suspects))
            for job in suspects:
                self._isolated(job)

    def _isolated(self, job: Job) -> None:
        try:
            self._pass([job], replace(self.settings, batch_size=1, num_workers=1))
        except RuntimeError as err:
            if not is_worker_crash(err):
                raise
            reason = f"decoding crashed its worker process: {err}"
            self._process([DecodedSample(job.ref.name, errors={m: reason for m in job.modalities})])


def merge_shard_reports(settings: ExtractionSettings) -> Optional[Path]:
    """Rewrite ``extraction_report.json`` from the shard reports present (sharded runs only)."""
    if settings.shard_count == 1:
        return None
    from my_affectgpt.common.atomic import write_json_atomic

    layout = settings.layout()
    shard_files = list(layout.root.glob(f"extraction_report.shard*of{settings.shard_count}.json"))
    if not shard_files:
        return None
    write_json_atomic(layout.report_path(), merge_report_files(shard_files), tag=settings.temp_tag)
    return layout.report_path()


def _write_reports(report: ExtractionReport, settings: ExtractionSettings, layout: OutputLayout) -> Path:
    path = layout.report_path(settings.shard_index, settings.shard_count)
    report.write(path, settings.temp_tag)
    merge_shard_reports(settings)
    return path


def run_extraction(settings: ExtractionSettings) -> Tuple[ExtractionReport, Path]:
    """Extract every pending output of this shard; returns the report and where it was written.

    Ctrl-C (or SIGTERM turned into KeyboardInterrupt by the CLI) writes the report marked
    ``interrupted`` and re-raises.
    """
    from tqdm import tqdm

    layout = settings.layout()
    settings_record = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()}
    report = ExtractionReport(settings.dataset, settings.modalities, settings.shard, settings_record)
    for folder in [layout.root] + [layout.folder(m) for m in settings.modalities]:
        report.removed_temp_files += remove_stale_temps(folder, settings.temp_tag)

    locator = au_locator(settings)
    refs, report.duplicate_names = unique(collect_samples(settings, locator))
    refs = take_shard(refs, settings.shard_index, settings.shard_count)
    jobs, invalid = _plan(refs, settings, layout, report)
    needed = sorted({m for job in jobs for m in job.modalities if job.ref.problem is None})
    logger.info("%s shard %s: %d sample(s), %d with outputs to extract", settings.dataset, settings.shard,
                len(refs), len(jobs))
    try:
        if jobs:
            rows = {"frame": settings.frame_n_frms, "audio": settings.clips_per_video}
            encoders = FeatureEncoders(settings.encoders, needed, settings.batch_size, rows)
            with tqdm(total=len(jobs), unit="sample", desc=f"{settings.dataset} {settings.shard}",
                      disable=not settings.progress, dynamic_ncols=True) as bar:
                _Extraction(settings, locator, encoders, layout, report, invalid, bar).run(jobs)
    except KeyboardInterrupt:
        report.interrupted = True
        raise
    finally:
        path = _write_reports(report, settings, layout)
    return report, path
