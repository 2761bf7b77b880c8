"""MER-Caption+ format: the training set, held-out folders in the same layout, and the demo.

The layout of the original AffectGPT's data folder: ``track2_train_mercaptionplus.csv``
(``name``, ``openset``) lists the samples, whatever the block's ``split``: a ``split: test``
block reads its names from it too. ``track3_train_mercaptionplus.csv`` (``name``,
``reason``) and the subtitle CSV (``name``, ``english``/``chinese``) are matched by name.
An empty open-set cell means neutral, as in the original.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from my_affectgpt.datasets.base_dataset import BaseDataset
from my_affectgpt.datasets.label_files import read_openset_csv
from my_affectgpt.datasets.tables import CSVFileError, read_rows, rows_by_name


class MERCaptionPlusDataset(BaseDataset):
    mer_factory_folder = "MERCaptionPlus"

    def annotation_source(self) -> str:
        return str(Path(self.cfg.data_root) / self.cfg.label_csv)

    def read_records(self) -> List[Dict]:
        root = Path(self.cfg.data_root)
        records = {
            name: {"name": name, "openset": labels}
            for name, labels in read_openset_csv(root / self.cfg.label_csv, empty="neutral").items()
        }
        needs_reason = self.question is None and self.cfg.label_type in ("description", "hybrid")
        reason_path = root / self.cfg.reason_csv
        if needs_reason or reason_path.is_file():
            reasons = rows_by_name(reason_path, read_rows(reason_path, ["name", "reason"]), "reason")
            for name, record in records.items():
                if name in reasons:
                    record["reason"] = reasons[name]["reason"]
            missing = [n for n, r in records.items() if "reason" not in r]
            if needs_reason and missing:
                raise CSVFileError(
                    f"{reason_path}: no reason for {len(missing)} sample(s) of {self.cfg.label_csv} "
                    f"(first: {missing[0]}); label_type {self.cfg.label_type} needs one per sample"
                )
        self.attach_subtitles(records)
        for record in records.values():
            record["label"] = record["openset"][0]
        return list(records.values())


class DemoDataset(MERCaptionPlusDataset):
    """The synthetic dataset ``python -m my_affectgpt.demo_assets`` writes (MER-Caption+ layout)."""

    mer_factory_folder = "DEMO"
    eval_kind = "discrete"  # one label per clip
