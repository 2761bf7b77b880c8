"""The MER-UniBench test datasets: names and gold labels come from each dataset's label file.

Layouts follow the MER-UniBench release (``label-6way.npz``, ``label.npz``, ``label_4way.npz``,
``ovlabel.csv``; ``sub*`` media folders for the datasets cut from longer recordings). Every
file and folder can be overridden from the dataset's config block (``label_path``,
``subtitle_csv``, ``video_root``, ``audio_root``, ``face_root``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from my_affectgpt.common.registry import registry
from my_affectgpt.datasets.base_dataset import GOLD_FIELD, BaseDataset
from my_affectgpt.datasets.builders import DatasetBuilder
from my_affectgpt.datasets.label_files import read_candidates_csv, read_gold

TRANSCRIPTION_CSV = "transcription-engchi-polish.csv"
# Label files holding several splits, and the one MER-UniBench tests on.
DEFAULT_LABEL_SPLIT = {"mer2023": "test1_corpus", "mer2024": "test1_corpus"}
# The labels of the discrete test sets, as the original AffectGPT names them, in the index
# order of the label files that store class indices (MELD, IEMOCAPFour). A gold label
# outside its dataset's set is an error naming the file and the sample.
_MER_LABELS = ("neutral", "angry", "happy", "sad", "worried", "surprise")
LABEL_NAMES = {
    "mer2023": _MER_LABELS,
    "mer2024": _MER_LABELS,
    "meld": ("anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise"),
    "iemocapfour": ("happy", "sad", "neutral", "anger"),
}

# name: (MER-Factory folder, label file, scoring kind, subtitle CSV, video folder, audio folder)
UNIBENCH = {
    "mer2023": ("MER2023", "label-6way.npz", "discrete", TRANSCRIPTION_CSV, "video", "audio"),
    "mer2024": ("MER2024", "label-6way.npz", "discrete", "transcription_merge.csv", "video", "audio"),
    "meld": ("MELD", "label.npz", "discrete", TRANSCRIPTION_CSV, "subvideo", "subaudio"),
    "iemocapfour": ("IEMOCAPFour", "label_4way.npz", "discrete", TRANSCRIPTION_CSV, "subvideo-tgt", "subaudio"),
    "cmumosi": ("CMUMOSI", "label.npz", "sentiment", TRANSCRIPTION_CSV, "subvideo", "subaudio"),
    "cmumosei": ("CMUMOSEI", "label.npz", "sentiment", TRANSCRIPTION_CSV, "subvideo_new", "subaudio"),
    "sims": ("SIMS", "label.npz", "sentiment", TRANSCRIPTION_CSV, "video", "audio"),
    "simsv2": ("SIMSv2", "label.npz", "sentiment", TRANSCRIPTION_CSV, "video_new", "audio"),
    "ovmerd": ("OVMERD", "ovlabel.csv", "openset", "subtitle_chieng.csv", "video", "audio"),
    "ovmerdplus": ("OVMERDPlus", "ovlabel.csv", "openset", "subtitle_eng.csv", "video", "audio"),
    "mer2025ov": ("MER2025OV", "track2_test.csv", "openset", "subtitle_chieng.csv", "video", "audio"),
}


class LabelFileDataset(BaseDataset):
    """A test set whose sample names and gold labels come from one label file."""

    default_label_file = ""
    default_label_split = None  # None: the file's only split, or test_corpus
    label_names = None  # discrete sets: the dataset's labels (index order for index files)

    def label_path(self) -> Path:
        return Path(self.cfg.label_path or Path(self.cfg.data_root) / self.default_label_file)

    def annotation_source(self) -> str:
        return str(self.label_path())

    def read_records(self) -> List[Dict]:
        gold = read_gold(
            self.label_path(),
            self.eval_kind,
            split=self.cfg.label_split or self.default_label_split,
            label_names=self.label_names,
            label_set=self.label_names,
        )
        field = GOLD_FIELD[self.eval_kind]
        records = {name: {"name": name, field: value} for name, value in gold.items()}
        for record in records.values():
            if self.eval_kind == "openset":
                record["label"] = ", ".join(record["openset"])
        if self.cfg.candidate_path:
            for name, candidates in read_candidates_csv(self.cfg.candidate_path).items():
                if name in records:
                    records[name]["candidates"] = candidates
        self.attach_subtitles(records)
        return list(records.values())


def _register(name: str, spec: tuple) -> None:
    folder, label_file, kind, subtitle_csv, video, audio = spec
    dataset_cls = type(
        f"{folder}Dataset",
        (LabelFileDataset,),
        {
            "mer_factory_folder": folder,
            "default_label_file": label_file,
            "default_label_split": DEFAULT_LABEL_SPLIT.get(name),
            "label_names": LABEL_NAMES.get(name),
            "eval_kind": kind,
            "default_subtitle_csv": subtitle_csv,
            "default_media_folders": {"video": video, "audio": audio, "face": "openface_face"},
            "__doc__": f"{folder} test set ({kind} scoring, labels from {label_file}).",
        },
    )
    registry.register_builder(name)(type(f"{folder}Builder", (DatasetBuilder,), {"dataset_cls": dataset_cls}))


for _name, _spec in UNIBENCH.items():
    _register(_name, _spec)
