"""MER-Caption+ format: the training set, held-out folders in the same layout, and the demo."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from my_affectgpt.datasets.base_dataset import BaseDataset
from my_affectgpt.datasets.label_files import parse_openset
from my_affectgpt.datasets.tables import read_csv


class MERCaptionPlusDataset(BaseDataset):
    mer_factory_folder = "MERCaptionPlus"

    def annotation_source(self) -> str:
        return str(Path(self.cfg.data_root) / self.cfg.label_csv)

    def read_records(self) -> List[Dict]:
        root = Path(self.cfg.data_root)
        labels = read_csv(root / self.cfg.label_csv, ["name", "openset"])
        records = {
            row.name: {"name": row.name, "openset": parse_openset(row.openset) or ["neutral"]}
            for row in labels.itertuples()
        }
        needs_reason = self.question is None and self.cfg.label_type in ("description", "hybrid")
        reason_path = root / self.cfg.reason_csv
        if needs_reason or reason_path.is_file():
            for row in read_csv(reason_path, ["name", "reason"]).itertuples():
                if row.name in records:
                    records[row.name]["reason"] = row.reason
            missing = [n for n, r in records.items() if "reason" not in r]
            if needs_reason and missing:
                raise ValueError(
                    f"{reason_path}: no reason for {len(missing)} sample(s) of {self.cfg.label_csv} "
                    f"(first: {missing[0]}); label_type {self.cfg.label_type} needs one per sample"
                )
        self.attach_subtitles(records)
        for record in records.values():
            record["label"] = record["openset"][0]
        return list(records.values())


class DemoDataset(MERCaptionPlusDataset):
    """The synthetic dataset ``scripts/make_demo_assets.py`` writes (MER-Caption+ layout)."""

    mer_factory_folder = "DEMO"
    eval_kind = "discrete"  # one label per clip
