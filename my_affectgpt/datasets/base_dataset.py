"""BaseDataset: one sample = modality inputs + prompt + answer (SPEC 6, ARCHITECTURE.md).

Subclasses only say where their annotations are (``read_records``) and their MER-Factory
folder name; everything else (features, media, the AU channel, the prompt, the bad-sample
policy) lives here so every dataset behaves the same.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Dict, List, Optional

from torch.utils.data import Dataset

from my_affectgpt.common.config_schema import (
    PROMPT_CONTENTS,
    DatasetConfig,
    ModelConfig,
    feature_modalities,
    to_dataclass,
)
from my_affectgpt.conversation import prompts
from my_affectgpt.datasets.au_source import AUSource
from my_affectgpt.datasets.collate import collate
from my_affectgpt.datasets.errors import BadSampleError
from my_affectgpt.datasets.features import FeatureLayout, expected_width, load_feature_npy
from my_affectgpt.common.sample_names import check_sample_name
from my_affectgpt.datasets.tables import read_csv

logger = logging.getLogger("my_affectgpt")

# The record field holding the gold value for each scoring kind (my_affectgpt.evaluation).
GOLD_FIELD = {"discrete": "label", "sentiment": "valence", "openset": "openset"}


def feature_layout(ds_cfg) -> FeatureLayout:
    """Where a dataset block's pre-extracted features are."""
    return FeatureLayout(Path(ds_cfg.preextracted_root), ds_cfg.visual_encoder, ds_cfg.acoustic_encoder,
                         ds_cfg.frame_n_frms, ds_cfg.clips_per_video, ds_cfg.frame_sampling)


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

    def __init__(
        self,
        ds_cfg,
        model_cfg,
        *,
        on_bad_sample: str = "error",
        seed: int = 42,
        question: Optional[tuple] = None,
        au_realtime: bool = False,
    ):
        self.cfg = to_dataclass(DatasetConfig, ds_cfg, "datasets")
        self.model_cfg = to_dataclass(ModelConfig, model_cfg, "model")
        self.on_bad_sample = on_bad_sample
        self.seed = seed
        self.question = question
        self.pass_index = 0
        self.modalities = feature_modalities(ds_cfg.face_or_frame)
        self.features = feature_layout(self.cfg)
        self.au = AUSource(self.cfg, self.model_cfg, self.dataset_folder(), realtime=au_realtime)
        self.records = self.read_records()
        for record in self.records:
            check_sample_name(record["name"], self.annotation_source())
        self.au_block = None if self.au.mode is None else ("au_agent" if self.au.mode == "agent" else "au")
        if not self.records:
            raise ValueError(f"{type(self).__name__}: no samples found in {self.annotation_source()}")

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
        for row in read_csv(path, ["name", column]).itertuples():
            if row.name in records:
                records[row.name]["subtitle"] = getattr(row, column)
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
        return PROMPT_CONTENTS[self.cfg.face_or_frame]

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
        record = self.records[index]
        try:
            return self.load_sample(record)
        except BadSampleError as exc:
            if self.on_bad_sample == "skip" or exc.skip:
                return {"skipped": f"{exc.name}: {exc.reason} ({exc.path})"}
            raise

    def collater(self, samples: List[Dict]) -> Dict:
        return collate(samples)

    # -- loading -----------------------------------------------------------------------------
    def load_sample(self, record: Dict) -> Dict:
        name = record["name"]
        sample: Dict = {"name": name, "max_length": self.cfg.max_length}
        if self.cfg.use_preextracted_features:
            sample.update(self._preextracted(name))
        else:
            sample.update(self._raw_media(name))
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
            reason=record.get("reason", ""),
            openset=record.get("openset") or [],
            label=record.get("label", ""),
            candidates=record.get("candidates") or [],
            valence=record.get("valence"),
        )

    def _preextracted(self, name: str) -> Dict:
        layout = self.features
        return {
            m: load_feature_npy(name, layout.locate(m, name), layout.rows(m), *expected_width(self.model_cfg, m))
            for m in self.modalities
        }

    def _raw_media(self, name: str) -> Dict:
        from my_affectgpt.processors.raw_media import SampleMediaError, load_raw_media

        roots = {kind: self.media_root(kind) for kind in ("video", "audio", "face")}
        try:
            return load_raw_media(self.cfg, name, self.modalities, self.au.analysis_for_sampling(name), roots)
        except SampleMediaError as err:
            raise BadSampleError(name, err.folder, err.reason) from None
