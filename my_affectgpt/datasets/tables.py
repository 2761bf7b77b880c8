"""Reading the CSV tables datasets ship with."""
from __future__ import annotations

from pathlib import Path
from typing import List

from my_affectgpt.common.errors import UserError, UserFileNotFoundError
from my_affectgpt.common.sample_names import check_sample_name


def read_csv(path: Path, required_columns: List[str]):
    """A CSV as a DataFrame of strings; a clear error for a missing, empty or wrong file or a
    sample name that is not a plain file stem."""
    import pandas as pd

    if not path.is_file():
        raise UserFileNotFoundError(f"{path}: file not found; check the dataset's data_root and file-name keys")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the CSV is empty; expected columns {', '.join(required_columns)}") from None
    missing = [c for c in required_columns if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns)}")
    if frame.empty:
        raise UserError(f"{path}: the CSV has a header but no rows")
    if "name" in frame.columns:
        for name in frame["name"]:
            check_sample_name(name, str(path))
    return frame
