"""Which samples an extraction run covers: a CSV column or a folder listing, then a shard of it.

A CSV value is either a sample name (``sample_00001``) or a media file: a value with a path
separator is a path (relative ones are taken from the CSV's folder), and a bare file name
with a media extension (``sample_00001.avi``) is that file in the video root. The sample's
name is then the file's stem. Entries that cannot be used (an unsafe name, an empty cell)
are kept with the reason, so the run reports them instead of stopping.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

from my_affectgpt.common.errors import UserError, UserFileNotFoundError
from my_affectgpt.processors.raw_media import MEDIA_EXTS
from my_affectgpt.common.sample_names import check_sample_name


@dataclass(frozen=True)
class SampleRef:
    name: str
    media: Optional[Path] = None  # the media file the CSV named, if it named one
    problem: Optional[str] = None  # why this entry cannot be extracted


def _is_path(value: str) -> bool:
    return "/" in value or "\\" in value or os.sep in value


def ref_from_value(value: str, csv_dir: Path, video_root: Optional[Path]) -> SampleRef:
    value = value.strip()
    media = None
    if _is_path(value):
        media = Path(os.path.expanduser(value))
        media = media if media.is_absolute() else csv_dir / media
        name = media.stem
    elif Path(value).suffix.lower() in MEDIA_EXTS:
        media = (video_root or csv_dir) / value
        name = Path(value).stem
    else:
        name = value
    try:
        check_sample_name(name, "sample list")
    except ValueError as err:
        return SampleRef(name=value or "<empty>", problem=str(err))
    return SampleRef(name=name, media=media)


def read_sample_csv(csv_path: Path, column: str, video_root: Optional[Path]) -> List[SampleRef]:
    """One ``SampleRef`` per row of ``column``; a clear error for a missing, empty or wrong file.

    Read here rather than with ``datasets.tables.read_csv``, which rejects the whole file for
    one unsafe name: an extraction run reports such a row and goes on with the others.
    """
    import csv

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise UserFileNotFoundError(f"--csv_path {csv_path}: file not found")
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise UserError(f"--csv_path {csv_path}: the CSV is empty; expected a header with a '{column}' column")
        if column not in reader.fieldnames:
            raise UserError(
                f"--csv_path {csv_path}: no column '{column}' (found: {', '.join(reader.fieldnames)}); "
                "set --csv_column"
            )
        values = [row[column] or "" for row in reader]
    if not values:
        raise UserError(f"--csv_path {csv_path}: the CSV has a header but no rows")
    return [ref_from_value(value, csv_path.parent, video_root) for value in values]


def list_media_names(root: Path) -> List[str]:
    """Sorted stems of the media files directly in ``root``."""
    names = {
        entry.stem
        for entry in Path(root).iterdir()
        if entry.is_file() and not entry.name.startswith(".") and entry.suffix.lower() in MEDIA_EXTS
    }
    return sorted(names)


def list_subfolders(root: Path) -> List[str]:
    """Sorted names of the non-hidden folders in ``root`` (face crops, AU JSON folders)."""
    return sorted(entry.name for entry in Path(root).iterdir() if entry.is_dir() and not entry.name.startswith("."))


def unique(refs: Iterable[SampleRef]) -> Tuple[List[SampleRef], int]:
    """The refs with repeated names dropped (first kept), and how many were dropped."""
    seen, kept, dropped = set(), [], 0
    for ref in refs:
        if ref.name in seen:
            dropped += 1
            continue
        seen.add(ref.name)
        kept.append(ref)
    return kept, dropped


def parse_shard(text: str) -> Tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text!r}: expected INDEX/COUNT such as 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {text!r}: INDEX must be in [0, COUNT) and COUNT >= 1")
    return index, count


def shard_from_env() -> Tuple[int, int]:
    """``(RANK, WORLD_SIZE)`` as torchrun sets them; ``(0, 1)`` outside torchrun."""
    from my_affectgpt.common.dist_utils import get_rank, get_world_size

    return get_rank(), get_world_size()


def take_shard(refs: List[SampleRef], index: int, count: int) -> List[SampleRef]:
    """Every ``count``-th ref starting at ``index``: the shards partition the list."""
    return refs[index::count]
