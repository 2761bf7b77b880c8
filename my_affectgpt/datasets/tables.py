"""Reading the CSV tables datasets ship with (annotations, subtitles, label files).

One reader for all of them, so every CSV problem is reported the same way: the file, the
line the bad row starts on, and what to change. Rows keep that line number so readers
further up can name it too (an unreadable open-set cell, a conflicting duplicate).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from my_affectgpt.common.errors import UserError, UserFileNotFoundError
from my_affectgpt.common.sample_names import check_sample_name


class CSVFileError(UserError, ValueError):
    """A CSV that cannot be read as a table; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class CSVRow:
    line: int  # the file line the row starts on (a quoted cell may span several lines)
    values: Dict[str, str]

    def __getitem__(self, column: str) -> str:
        return self.values[column]


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise CSVFileError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); "
            "save the file as UTF-8 (in Excel: 'CSV UTF-8')"
        ) from None


def read_table(path: Path) -> Tuple[List[str], List[CSVRow]]:
    """The header (stripped names; [] for an empty file) and the non-blank rows of a CSV.

    Short rows are padded with "" (pandas reads them as missing values); a row with more
    non-empty cells than the header is an error, as it is for pandas.
    """
    path = Path(path)
    if not path.is_file():
        raise UserFileNotFoundError(f"{path}: file not found; check the dataset's data_root and file-name keys")
    reader = csv.reader(io.StringIO(_decode(path), newline=""), strict=True)
    header: List[str] = []
    rows: List[CSVRow] = []
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise CSVFileError(
                f"{path}, line {start}: {err}; quote a cell that holds commas, quotes or line breaks "
                'and double the quotes inside it ("say ""hi"", then")'
            ) from None
        if not any(cell.strip() for cell in cells):
            continue
        if not header:
            header = [cell.strip() for cell in cells]
            repeated = sorted({c for c in header if header.count(c) > 1})
            if repeated:
                raise CSVFileError(f"{path}, line {start}: column {repeated[0]!r} appears twice in the header")
            continue
        extra = [cell for cell in cells[len(header):] if cell.strip()]
        if extra:
            raise CSVFileError(
                f"{path}, line {start}: {len(cells)} cells, but the header has {len(header)} "
                f"({', '.join(header)}); quote a cell that contains commas"
            )
        cells = cells[: len(header)] + [""] * (len(header) - len(cells))
        rows.append(CSVRow(start, dict(zip(header, cells))))
    return header, rows


def read_rows(path: Path, required_columns: Sequence[str]) -> List[CSVRow]:
    """The rows of a CSV that must have ``required_columns`` and at least one row; a ``name``
    column must hold plain file stems."""
    path = Path(path)
    header, rows = read_table(path)
    if not header:
        raise CSVFileError(f"{path}: the CSV is empty; expected columns {', '.join(required_columns)}")
    missing = [c for c in required_columns if c not in header]
    if missing:
        raise CSVFileError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(header)}")
    if not rows:
        raise CSVFileError(f"{path}: the CSV has a header but no rows")
    if "name" in header:
        for row in rows:
            check_sample_name(row["name"], f"{path}, line {row.line}")
    return rows


def read_csv(path: Path, required_columns: List[str]):
    """``read_rows`` as a DataFrame of strings (missing cells are "")."""
    import pandas as pd

    rows = read_rows(path, required_columns)
    return pd.DataFrame([row.values for row in rows], columns=list(rows[0].values), dtype=str)


def rows_by_name(path: Path, rows: Sequence[CSVRow], column: str) -> Dict[str, CSVRow]:
    """``name -> row``. A name may repeat with the same ``column`` value (the first row is
    kept); repeating it with another value is an error naming both lines."""
    by_name: Dict[str, CSVRow] = {}
    for row in rows:
        name = row["name"]
        first = by_name.setdefault(name, row)
        if first is not row and first[column].strip() != row[column].strip():
            raise CSVFileError(
                f"{path}, lines {first.line} and {row.line}: sample {name!r} appears twice with different "
                f"{column} ({first[column]!r} / {row[column]!r}); keep one of the rows"
            )
    return by_name
