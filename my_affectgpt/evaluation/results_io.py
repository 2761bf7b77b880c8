"""The per-checkpoint results file inference appends to, and its ``name2reason`` twin."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Iterable, Optional

from my_affectgpt.common.atomic import write_file_atomic, write_json_atomic, write_text_atomic
from my_affectgpt.common.errors import UserError


class ResultsWriter:
    """Append-only JSONL of ``{"name", "answer", ...}`` records that survives being killed.

    Each batch is appended, flushed and fsynced. On opening, complete lines are kept; a last
    line cut short by a kill is dropped (the file is rewritten atomically without it), so the
    restarted run regenerates exactly the missing samples: no duplicates, no gaps.
    """

    def __init__(self, path: Path, source: Optional[dict] = None):
        """``source`` identifies what produced the answers (the checkpoint file: path, size,
        mtime). It is kept beside the results; resuming with a different source is an error,
        so answers of two checkpoints never mix in one file."""
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
            raise UserError(
                f"{self.path} holds answers of {previous.get('checkpoint')} as it was then "
                f"({previous}), not of the checkpoint now at that name ({source}); move the results "
                f"folder away (or delete the file) to generate them again"
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
                raise ValueError(
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
            fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
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
