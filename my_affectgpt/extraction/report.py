"""What an extraction run did, per modality: done / skipped / failed (with reasons).

Written as ``extraction_report.json`` in the dataset's output folder. Shards of one run
write ``extraction_report.shard{i}of{n}.json`` each and refresh the merged
``extraction_report.json`` from every shard file present when they finish.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

COUNT_KEYS = ("done", "skipped", "failed", "redone_invalid")


class ExtractionReport:
    """Outcomes keyed by (sample, modality), so recording one twice (a batch redone after a
    decoding worker crashed) counts it once."""

    def __init__(self, dataset: str, modalities: Iterable[str], shard: str, settings: Optional[Dict] = None):
        self.dataset = dataset
        self.modalities = list(modalities)
        self.shard = shard
        self.settings = settings or {}
        self._done: Dict[Tuple[str, str], bool] = {}  # -> whether an invalid file was replaced
        self._failed: Dict[Tuple[str, str], str] = {}
        self._skipped: Counter = Counter()
        self._fallbacks: Dict[str, str] = {}  # sample -> why emotion_peak fell back
        self.duplicate_names = 0
        self.removed_temp_files = 0
        self.interrupted = False
        self.started = time.time()
        self.finished: Optional[float] = None

    # -- recording ---------------------------------------------------------------------------
    def done(self, name: str, modality: str, redone_invalid: bool = False) -> None:
        self._failed.pop((name, modality), None)
        self._done[(name, modality)] = redone_invalid

    def skipped(self, modality: str) -> None:
        self._skipped[modality] += 1

    def failed(self, name: str, modality: str, reason: str) -> None:
        if (name, modality) not in self._done:
            self._failed[(name, modality)] = reason

    def fell_back(self, name: str, reason: str) -> None:
        self._fallbacks[name] = reason

    @property
    def failed_count(self) -> int:
        return len(self._failed)

    @property
    def counts(self) -> Dict[str, Dict[str, int]]:
        counts = {m: dict.fromkeys(COUNT_KEYS, 0) for m in self.modalities}
        for (_, modality), redone in self._done.items():
            counts[modality]["done"] += 1
            counts[modality]["redone_invalid"] += int(redone)
        for _, modality in self._failed:
            counts[modality]["failed"] += 1
        for modality, count in self._skipped.items():
            counts[modality]["skipped"] = count
        return counts

    @property
    def failures(self) -> List[Dict[str, str]]:
        return [{"name": n, "modality": m, "reason": r} for (n, m), r in self._failed.items()]

    # -- output ------------------------------------------------------------------------------
    def to_dict(self) -> Dict:
        self.finished = self.finished or time.time()
        return {
            "dataset": self.dataset,
            "shard": self.shard,
            "modalities": self.modalities,
            "interrupted": self.interrupted,
            "seconds": round(self.finished - self.started, 3),
            "counts": self.counts,
            "failed": self.failures,
            "frame_sampling_fallbacks": {
                "reasons": dict(Counter(self._fallbacks.values())),
                "names": list(self._fallbacks),
            },
            "duplicate_names_dropped": self.duplicate_names,
            "removed_temp_files": self.removed_temp_files,
            "settings": self.settings,
        }

    def write(self, path: Path, tag: str) -> None:
        from my_affectgpt.common.atomic import write_json_atomic

        write_json_atomic(path, self.to_dict(), tag=tag)

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [f"extraction of {self.dataset} (shard {self.shard})" + (" INTERRUPTED" if self.interrupted else "")]
        for modality, counts in self.counts.items():
            redone = ""
            if counts["redone_invalid"]:
                redone = f" (of which {counts['redone_invalid']} replaced invalid files)"
            lines.append(
                f"  {modality}: {counts['done']} done{redone}, {counts['skipped']} skipped (already valid), "
                f"{counts['failed']} failed"
            )
        if self._fallbacks:
            counted = sorted(Counter(self._fallbacks.values()).items())
            reasons = ", ".join(f"{count} {reason}" for reason, count in counted)
            lines.append(f"  emotion_peak fell back to uniform sampling for {len(self._fallbacks)} sample(s): "
                         f"{reasons}")
        failures = self.failures
        for failure in failures[:20]:
            lines.append(f"  FAILED {failure['name']} [{failure['modality']}]: {failure['reason']}")
        if len(failures) > 20:
            lines.append(f"  ... and {len(failures) - 20} more failures (see the report file)")
        return "\n".join(lines)


def merge_report_files(paths: Iterable[Path]) -> Dict:
    """One report dict from several shard report files (counts summed, lists joined)."""
    import json

    reports = [json.loads(Path(p).read_text()) for p in sorted(paths)]
    merged = {
        "dataset": reports[0]["dataset"],
        "shard": "merged: " + ", ".join(r["shard"] for r in reports),
        "modalities": reports[0]["modalities"],
        "interrupted": any(r["interrupted"] for r in reports),
        "seconds": max(r["seconds"] for r in reports),
        "counts": {},
        "failed": [f for r in reports for f in r["failed"]],
        "frame_sampling_fallbacks": {"reasons": {}, "names": []},
        "duplicate_names_dropped": max(r["duplicate_names_dropped"] for r in reports),
        "removed_temp_files": sum(r["removed_temp_files"] for r in reports),
        "settings": reports[0]["settings"],
    }
    for report in reports:
        for modality, counts in report["counts"].items():
            total = merged["counts"].setdefault(modality, dict.fromkeys(COUNT_KEYS, 0))
            for key in COUNT_KEYS:
                total[key] += counts.get(key, 0)
        fallbacks, total = report["frame_sampling_fallbacks"], merged["frame_sampling_fallbacks"]
        for reason, count in fallbacks["reasons"].items():
            total["reasons"][reason] = total["reasons"].get(reason, 0) + count
        total["names"] += fallbacks["names"]
    return merged
