"""Results files: the per-checkpoint JSONL inference appends to, its ``name2reason`` twin,
and reading either back.

A checkpoint's results are ``{output_dir}/results-{dataset}/{ckpt_name}.jsonl`` (one JSON object
per sample with at least ``name`` and ``answer``; written here) or, from the original AffectGPT,
``{ckpt_name}.npz`` holding ``name2reason`` (a pickled dict name -> answer). Label caches beside
them (``{ckpt_name}-openset.npz``, ``{ckpt_name}-openset-sentiment.npz``) are not results.

A run over several processes writes each process's answers to its own part,
``{ckpt_name}.rank{r}of{N}.jsonl``; :func:`merge_results` folds the parts into
``{ckpt_name}.jsonl`` in dataset order. Parts are not results either.
"""
from __future__ import annotations

import glob
import json
import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from my_affectgpt.common.atomic import write_file_atomic, write_json_atomic, write_text_atomic
from my_affectgpt.common.errors import UserError

LABEL_CACHE_SUFFIXES = ("-openset", "-openset-sentiment")
PART_PATTERN = re.compile(r"\.rank(\d+)of(\d+)$")


class ResultsFileError(UserError, ValueError):
    """A results file, or a results/gold combination, that cannot be scored."""


def read_results(path: str | Path) -> List[dict]:
    """The sample records of a results JSONL file, checked for ``name``/``answer`` and
    duplicate names."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist; run inference first")
    records, first_line = [], {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ResultsFileError(
                    f"results file {path}, line {number} is not valid JSON ({exc.msg}); "
                    "delete that line and rerun inference, which resumes the missing samples"
                ) from exc
            if not isinstance(record, dict) or not isinstance(record.get("name"), str) \
                    or not isinstance(record.get("answer"), str):
                raise ResultsFileError(
                    f"results file {path}, line {number}: expected an object with string "
                    "'name' and 'answer'"
                )
            name = record["name"]
            if name in first_line:
                raise ResultsFileError(
                    f"results file {path}: sample {name!r} appears on lines {first_line[name]} "
                    f"and {number}; keep one of them"
                )
            first_line[name] = number
            records.append(record)
    if not records:
        raise ResultsFileError(f"results file {path} has no samples")
    return records


def read_name2reason(path: str | Path) -> Dict[str, str]:
    """The answers of an original AffectGPT results ``.npz`` (``name2reason``: name -> answer).

    ``name2reason`` is a pickled dict, so it is loaded with ``allow_pickle=True`` (unpickling
    runs code stored in the file): only for results files the user points to.
    """
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist; run inference first")
    try:
        with np.load(path, allow_pickle=True) as npz:
            if "name2reason" not in npz.files:
                raise ResultsFileError(
                    f"results file {path} has the keys {', '.join(npz.files) or 'none'}, not 'name2reason'; "
                    "is it a label cache or a feature file?"
                )
            table = npz["name2reason"]
    except ResultsFileError:
        raise
    except Exception as exc:  # numpy raises OSError, ValueError, zipfile or pickle errors here
        raise ResultsFileError(f"results file {path} is not a readable .npz file: {exc}") from exc
    table = table.item() if table.shape == () else None
    if not isinstance(table, dict) or not table:
        raise ResultsFileError(f"results file {path}: 'name2reason' must be a non-empty dict name -> answer")
    bad = next((name for name, answer in table.items() if not isinstance(answer, str)), None)
    if bad is not None:
        raise ResultsFileError(f"results file {path}: the answer of sample {bad!r} is not a string")
    return {str(name): answer for name, answer in table.items()}


def read_answers(path: str | Path) -> Dict[str, str]:
    """Sample name -> answer of a results file, ``.jsonl`` or original ``.npz``."""
    path = Path(path)
    if path.suffix == ".npz":
        return read_name2reason(path)
    return {record["name"]: record["answer"] for record in read_results(path)}


def is_label_cache(path: Path) -> bool:
    return path.suffix == ".npz" and path.stem.endswith(LABEL_CACHE_SUFFIXES)


def part_path(final: Path, rank: int, world_size: int) -> Path:
    """Where process ``rank`` of ``world_size`` writes its share of ``final``'s answers."""
    return final.with_name(f"{final.stem}.rank{rank}of{world_size}{final.suffix}")


def is_results_part(path: Path) -> bool:
    return path.suffix == ".jsonl" and PART_PATTERN.search(path.stem) is not None


def results_parts(final: Path, suffix: str = ".jsonl") -> List[Path]:
    """The parts of ``final`` on disk, of any number of processes (a killed run's included);
    with ``suffix=".source.json"`` their identity files (a part that got no answers has only that)."""
    parts = final.parent.glob(f"{glob.escape(final.stem)}.rank*of*{suffix}")
    return sorted(p for p in parts if PART_PATTERN.fullmatch(p.name[len(final.stem):-len(suffix)]))


def results_files(results_dir: str | Path, dataset: str) -> List[Path]:
    """The results files of ``{results_dir}/results-{dataset}`` (folder name matched without
    regard to case), one per checkpoint, sorted by checkpoint name: each ``{ckpt}.jsonl``, and
    each original ``{ckpt}.npz`` that has no ``.jsonl`` beside it (label caches are skipped)."""
    results_dir = Path(results_dir)
    wanted = f"results-{dataset}".lower()
    folders = sorted(p for p in results_dir.glob("results-*") if p.is_dir())
    folder = next((p for p in folders if p.name == f"results-{dataset}"), None) or next(
        (p for p in folders if p.name.lower() == wanted), None
    )
    if folder is None:
        found = ", ".join(p.name for p in folders) or "none"
        raise FileNotFoundError(
            f"no folder results-{dataset} in {results_dir} (found: {found}); "
            "check --results-dir and the dataset name"
        )
    jsonl = {p.stem: p for p in folder.glob("*.jsonl") if not is_results_part(p)}
    npz = {p.stem: p for p in folder.glob("*.npz") if not is_label_cache(p)}
    files = [path for _, path in sorted({**npz, **jsonl}.items())]
    if not files:
        raise FileNotFoundError(f"{folder} holds no results files ({{checkpoint}}.jsonl or {{checkpoint}}.npz)")
    return files


def jsonl_text(records: Iterable[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _differences(old: dict, new: dict, prefix: str = "") -> List[str]:
    """``key: old -> new`` for every leaf that differs between two nested dicts."""
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return lines


class ResultsWriter:
    """Append-only JSONL of ``{"name", "answer", ...}`` records that survives being killed.

    Each batch is appended, flushed and fsynced. On opening, complete lines are kept; a last
    line cut short by a kill is dropped (the file is rewritten atomically without it), so the
    restarted run regenerates exactly the missing samples: no duplicates, no gaps.
    """

    def __init__(self, path: Path, source: Optional[dict] = None):
        """``source`` identifies everything that produced the answers (checkpoint file, question,
        generation settings, AU mode, dataset settings). It is kept beside the results; resuming
        with a different source is an error, so answers of two setups never mix in one file."""
        self.path = Path(path)
        self.done: Dict[str, dict] = {}  # name -> record already written
        if self.path.exists():
            self._check_source(source)
            self._recover()
        if source is not None:
            write_json_atomic(self.source_path, source)

    @property
    def source_path(self) -> Path:
        return self.path.with_suffix(".source.json")

    def _check_source(self, source: Optional[dict]) -> None:
        if source is None or not self.source_path.exists():
            return
        previous = json.loads(self.source_path.read_text(encoding="utf-8"))
        if previous != source:
            changed = _differences(previous, source)
            shown = "; ".join(changed[:5]) + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")
            raise UserError(
                f"{self.path} holds {len(self.done) or 'earlier'} answers made with other settings ({shown}); "
                f"they would not match this run. Write to another folder (--options run.output_dir=...), or "
                f"move the results folder away (or delete the file) to generate them again"
            )

    def _recover(self) -> None:
        text = self.path.read_text(encoding="utf-8")
        lines = text.split("\n")
        complete, tail = lines[:-1], lines[-1]
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ResultsFileError(
                    f"{self.path}: line {number} is not JSON; the file was edited or corrupted. "
                    f"Move it away to regenerate these results"
                ) from None
            self.done[record["name"]] = record
        if tail.strip():
            write_text_atomic(self.path, "".join(line + "\n" for line in complete if line.strip()))

    def append(self, records: Iterable[dict]) -> None:
        records = list(records)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(jsonl_text(records))
            fh.flush()
            os.fsync(fh.fileno())
        for record in records:
            self.done[record["name"]] = record

    def write_name2reason(self) -> Path:
        """``{stem}.npz`` with ``name2reason`` (name -> answer), as the public AffectGPT tools read it."""
        import numpy as np

        path = self.path.with_suffix(".npz")
        name2reason = {name: record["answer"] for name, record in self.done.items()}
        write_file_atomic(path, lambda fh: np.savez_compressed(fh, name2reason=np.array(name2reason, dtype=object)))
        return path


def merge_results(final: Path, source: Optional[dict], order: Sequence[str]) -> ResultsWriter:
    """Fold every part of ``final`` (see :func:`results_parts`) into ``final``, sorted by
    ``order`` (the dataset's sample names; names not in it keep their place after them), and
    delete the parts; returns the writer of the merged file.

    Each part is opened as a :class:`ResultsWriter` with ``source``, so a part made with other
    settings is an error and a line cut short by a kill is dropped. A sample in two files must
    have the same record in both (a merge killed before it deleted the parts leaves copies);
    different answers are an error. Without parts, a file already in order (as a single-process
    run writes it) is left as it is.
    """
    parts = results_parts(final)
    records: Dict[str, dict] = {}
    origin: Dict[str, Path] = {}
    for writer in [ResultsWriter(path, source) for path in ([final] if final.exists() else []) + parts]:
        for name, record in writer.done.items():
            if name in records and records[name] != record:
                raise ResultsFileError(
                    f"sample {name!r} has different answers in {origin[name]} and {writer.path}; "
                    f"delete the one you do not trust and run again"
                )
            records.setdefault(name, record)
            origin.setdefault(name, writer.path)
    position = {name: index for index, name in enumerate(order)}
    merged = sorted(records.values(), key=lambda r: position.get(r["name"], len(position)))
    if parts or [r["name"] for r in merged] != list(records):
        write_text_atomic(final, jsonl_text(merged))
        # after the merged file is in place: a kill in between leaves copies the next merge accepts
        for part in parts:
            part.unlink()
    for source_file in results_parts(final, ".source.json"):
        source_file.unlink()
    return ResultsWriter(final, source)
