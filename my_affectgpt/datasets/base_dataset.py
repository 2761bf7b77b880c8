"""BaseDataset: one sample = modality inputs + prompt + answer (see docs/ARCHITECTURE.md).

Subclasses only say where their annotations are (``read_records``) and their MER-Factory
folder name; everything else (features, media, the AU channel, the prompt, the bad-sample
policy) lives here so every dataset behaves the same.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Dict, List, Optional

from torch.utils.data import Dataset, get_worker_info

from my_affectgpt.common.face_or_frame import parse_face_or_frame
from my_affectgpt.common.sample_names import check_sample_name
from my_affectgpt.conversation import prompts
from my_affectgpt.datasets.au_source import AUSource
from my_affectgpt.datasets.collate import collate
from my_affectgpt.datasets.errors import BadSampleError, DatasetError
from my_affectgpt.datasets.features import FeatureLayout, expected_width, load_feature_npy
from my_affectgpt.datasets.tables import read_rows, rows_by_name
from my_affectgpt.processors.raw_media import MediaSources, RawMediaReader, SampleMediaError, SamplingSpec, encoder_inputs

logger = logging.getLogger("my_affectgpt")

# The record field holding the gold value for each scoring kind (my_affectgpt.evaluation).
GOLD_FIELD = {"discrete": "label", "sentiment": "valence", "openset": "openset"}


def feature_layout(ds_cfg) -> FeatureLayout:
    """Where a dataset block's pre-extracted features are."""
    return FeatureLayout(Path(ds_cfg.preextracted_root), ds_cfg.visual_encoder, ds_cfg.acoustic_encoder,
                         ds_cfg.frame_n_frms, ds_cfg.clips_per_video, ds_cfg.frame_sampling, ds_cfg.face_n_frms)


class BaseDataset(Dataset):
    """Dataset over one annotation set.

    ``question_kind`` is ``None`` for training (question and answer come from ``label_type``)
    or an ``(prompt_kind, question)`` pair for inference, where the answer is left empty.
    """

    mer_factory_folder = ""  # MER-Factory output folder of this dataset, e.g. "MER2023"
    # The dataset's usual layout under data_root; the config's *_root / subtitle_csv keys override.
    default_subtitle_csv = "subtitle_chieng.csv"
    default_media_folders = {"video": "video", "audio": "audio", "face": "openface_face"}
    eval_kind = "openset"  # how inference scores it: discrete, sentiment or openset

    # The label types ``hybrid`` draws from (the original's label_type_candidates).
    hybrid_choices = ("description", "ovlabel")

    def __init__(self, cfg, name: str, *, question: Optional[tuple] = None):
        """``cfg`` is the validated :class:`~my_affectgpt.common.config.Config`, ``name`` the
        dataset block; ``question`` is ``None`` for training or ``(prompt_kind, question)``
        for inference."""
        self.name = name
        self.cfg = cfg.datasets[name]
        self.model_cfg = cfg.model
        self.on_bad_sample = cfg.run.on_bad_sample
        self.seed = cfg.run.seed
        self.question = question
        self.pass_index = 0
        self.layout = parse_face_or_frame(self.cfg.face_or_frame)
        self.features = feature_layout(self.cfg)
        locator = None
        if self.cfg.mer_factory_output:
            from my_affectgpt.processors.au_json import AUJsonLocator

            locator = AUJsonLocator(self.cfg.mer_factory_output, self.dataset_folder())
        self.au = AUSource(cfg.au_mode(name), self.cfg, self.model_cfg, locator)
        self.media = RawMediaReader(self.media_sources(), self.sampling_spec(), locator, dataset=name)
        self.records = self.read_records()
        for record in self.records:
            check_sample_name(record["name"], self.annotation_source())
        if not self.records:
            raise DatasetError(f"datasets.{name}: no samples found in {self.annotation_source()}")
        if self.cfg.ratio < 1:  # the original's random subset, seeded here
            keep = max(1, int(len(self.records) * self.cfg.ratio))
            self.records = random.Random(self.seed).sample(self.records, keep)
        self.au_block = None if self.au.mode is None else ("au_agent" if self.au.mode == "agent" else "au")

    # -- what subclasses provide -------------------------------------------------------------
    def read_records(self) -> List[Dict]:
        """One dict per sample: ``name`` plus any of ``subtitle``, ``reason``, ``openset``
        (list of labels), ``label``, ``valence``, ``candidates``."""
        raise NotImplementedError

    def annotation_source(self) -> str:
        """Where ``read_records`` reads from, for error messages."""
        return self.cfg.data_root

    def attach_subtitles(self, records: Dict[str, Dict]) -> None:
        """Add ``subtitle`` to each record when the prompt has a subtitle sentence."""
        if "text" not in self.prompt_contents():
            return
        column = self.cfg.subtitle_column
        path = self.subtitle_csv()
        for name, row in rows_by_name(path, read_rows(path, ["name", column]), column).items():
            if name in records:
                records[name]["subtitle"] = row[column]
        missing = [name for name, record in records.items() if "subtitle" not in record]
        if missing:
            logger.warning("%s: %d sample(s) have no subtitle row (first: %s); their subtitle is left empty",
                           path, len(missing), missing[0])

    def subtitle_csv(self) -> Path:
        return Path(self.cfg.data_root) / (self.cfg.subtitle_csv or self.default_subtitle_csv)

    def media_root(self, kind: str) -> Path:
        """Folder of raw ``video``, ``audio`` or ``face`` inputs."""
        configured = getattr(self.cfg, f"{kind}_root")
        return Path(configured) if configured else Path(self.cfg.data_root) / self.default_media_folders[kind]

    def prompt_contents(self) -> tuple:
        return self.layout.contents

    def media_sources(self) -> MediaSources:
        audio = self.media_root("audio")
        return MediaSources(
            video_root=self.media_root("video"),
            # the configured audio folder, or the usual one when it exists; else the video's audio
            audio_root=audio if self.cfg.audio_root or audio.is_dir() else None,
            face_root=self.media_root("face"),
        )

    def sampling_spec(self) -> SamplingSpec:
        c = self.cfg
        return SamplingSpec(c.frame_sampling, c.frame_n_frms, c.face_sampling, c.face_n_frms,
                            c.clips_per_video, c.image_size)

    def dataset_folder(self) -> str:
        return self.cfg.mer_factory_folder or self.mer_factory_folder

    # -- Dataset API -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def gold(self) -> Dict[str, object]:
        """name -> gold value in the form the ``eval_kind`` scorer expects."""
        field = GOLD_FIELD[self.eval_kind]
        return {r["name"]: r[field] for r in self.records if field in r}

    def set_epoch(self, pass_index: int) -> None:
        """The runner calls this before each pass; hybrid targets are drawn per (sample, pass)."""
        self.pass_index = pass_index

    def __getitem__(self, index: int) -> Optional[Dict]:
        """The sample; under ``run.on_bad_sample: skip`` a ``{"skipped": why}`` marker instead
        of a sample that cannot be loaded. Inside a DataLoader worker the error travels to the
        main process as a ``{"failed": error}`` marker (see ``collate.raise_failed``), so it is
        raised there as itself, not as the worker's traceback."""
        record = self.records[index]
        try:
            return self.load_sample(record)
        except BadSampleError as exc:
            if self.on_bad_sample == "skip" or exc.skip:
                return {"skipped": f"{exc.name}: {exc.reason} ({exc.path})"}
            if get_worker_info() is not None:
                return {"failed": exc}
            raise

    def collater(self, samples: List[Dict]) -> Dict:
        return collate(samples)

    # -- loading -----------------------------------------------------------------------------
    def load_sample(self, record: Dict) -> Dict:
        name = record["name"]
        sample: Dict = {"name": name, "max_length": self.cfg.max_length}
        streams = self.layout.streams
        sample.update(self._preextracted(name, [s for s in streams if self._preextracted_stream(s)]))
        sample.update(self._raw_media(name, [s for s in streams if not self._preextracted_stream(s)]))
        if self.au.mode is not None:
            sample.update(self.au.load(name))
        question, answer = self._question_answer(record)
        sample["prompt"] = prompts.build_prompt(self.cfg.face_or_frame, record.get("subtitle"), question, self.au_block)
        sample["answer"] = answer
        sample["label"] = record.get("label") or ", ".join(record.get("openset") or [])
        return sample

    def _question_answer(self, record: Dict) -> tuple:
        if self.question is not None:
            return self.question[1], ""
        rng = random.Random(f"{self.seed}:{record['name']}:{self.pass_index}")
        return prompts.training_target(
            self.cfg.label_type,
            rng,
            hybrid_choices=self.hybrid_choices,
            reason=record.get("reason", ""),
            openset=record.get("openset") or [],
            label=record.get("label", ""),
            candidates=record.get("candidates") or [],
            valence=record.get("valence"),
        )

    def _preextracted_stream(self, stream: str) -> bool:
        return getattr(self.cfg, f"use_preextracted_{stream}")

    def _preextracted(self, name: str, streams) -> Dict:
        layout = self.features
        return {
            m: load_feature_npy(name, layout.locate(m, name), layout.rows(m), *expected_width(self.model_cfg, m))
            for m in streams
        }

    def _raw_media(self, name: str, streams) -> Dict:
        if not streams:
            return {}
        try:
            return encoder_inputs(self.media, name, streams)
        except SampleMediaError as err:
            raise BadSampleError(name, err.folder, err.reason) from None

    def fallback_reports(self) -> List[str]:
        """emotion_peak fallbacks to uniform sampling in this process (logged when new)."""
        return self.media.fallback_reports()
