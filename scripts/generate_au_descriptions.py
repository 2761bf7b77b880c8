"""Fill AU descriptions into MER-Factory AU JSONs with the AU Agent.

    python scripts/generate_au_descriptions.py \\
        --mer-factory-output ~/data/mer_factory_output --dataset-folder MER2023 \\
        --base-model ~/models/Qwen2.5-7B-Instruct --lora-weights ~/models/au_agent_lora \\
        --device cuda:1 --batch-size 16 --num-frames 8

For every ``<name>/<name>_au_analysis.json`` (or every ``*_au_analysis.json`` under
``--json-dir``) it picks ``--num-frames`` frames among those with active AUs (the peak frames
first, the rest spread uniformly), has the AU Agent describe them (batched across files) and
writes into the JSON:

* ``summary_description``: ``{"<frame>": "clean description", ...}`` (what realtime CLIP mode
  and feature pre-extraction read);
* the transcript ("system\\n...\\nuser\\n...\\nassistant\\n...") as ``fine_grained_description``
  of each described entry of ``per_frame_au_descriptions``; upstream-shape JSONs, whose
  frames come from the OpenFace CSV beside them, get ``fine_grained_descriptions``
  (``{"<frame>": transcript}``) instead, so their shape is kept.

Every other key is kept as it was. Each JSON is written atomically (temp file + rename), so
a killed run never leaves a partial file; a rerun skips files that already have a
``summary_description`` (``--overwrite`` redoes them). The final report (done / skipped /
failed with reasons, and descriptions containing emotion words) is printed and saved as JSON
(``--report``, default ``au_description_report.json`` beside the JSONs). The exit status is
1 when a file failed, 130 when interrupted, 0 otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from my_affectgpt.common.errors import UserError, UserFileNotFoundError
from my_affectgpt.processors.au_json import AU_JSON_SUFFIX, AUFrame, AUJsonLocator  # noqa: E402

REPORT_NAME = "au_description_report.json"
SHOWN = 10  # failures / violations printed (the report file has all)


class SkipFile(Exception):
    """A file with nothing to describe; counted as skipped with the reason."""


@dataclass
class Job:
    """One JSON to fill: its raw content and the frames chosen for the AU Agent."""

    path: Path
    data: dict
    frames: List[AUFrame]
    positions: List[int]  # the frames' positions in per_frame_au_descriptions (JSON frames only)
    per_frame_in_json: bool


@dataclass
class Report:
    done: List[str] = field(default_factory=list)
    skipped: List[dict] = field(default_factory=list)
    failed: List[dict] = field(default_factory=list)
    violations: List[dict] = field(default_factory=list)
    interrupted: bool = False

    def to_dict(self, settings: dict) -> dict:
        return {
            "counts": {
                "done": len(self.done), "skipped": len(self.skipped), "failed": len(self.failed),
                "emotion_word_violations": len(self.violations),
            },
            "interrupted": self.interrupted,
            "settings": settings,
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "violations": self.violations,
        }


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="generate_au_descriptions.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--mer-factory-output", help="MER-Factory output root (with --dataset-folder)")
    where.add_argument("--json-dir", help="folder searched recursively for *_au_analysis.json")
    parser.add_argument("--dataset-folder", default="", help="dataset folder under the root, e.g. MER2023")
    parser.add_argument("--num-frames", type=int, default=8, help="frames described per video (default 8)")
    parser.add_argument("--base-model", required=True, help="AU Agent LLM: local directory or hub id")
    parser.add_argument("--lora-weights", default="", help="peft adapter folder or au_agent_lora checkpoint_*.pth")
    parser.add_argument("--device", default="", help="e.g. cuda:1 (default: cuda:0 when available, else cpu)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument("--batch-size", type=int, default=8, help="frames generated together (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--overwrite", action="store_true", help="redo files that already have summary_description")
    parser.add_argument("--report", default="", help=f"report JSON path (default: {REPORT_NAME} beside the JSONs)")
    args = parser.parse_args(argv)
    if args.num_frames < 1 or args.batch_size < 1 or args.max_new_tokens < 1:
        parser.error("--num-frames, --batch-size and --max-new-tokens must be >= 1")
    return args


def find_json_files(args: argparse.Namespace) -> tuple[Path, List[Path]]:
    """(folder the report goes beside, sorted AU JSON paths)."""
    if args.json_dir:
        base = Path(args.json_dir).expanduser()
        files = sorted(base.rglob(f"*{AU_JSON_SUFFIX}"))
    else:
        base = AUJsonLocator(Path(args.mer_factory_output).expanduser(), args.dataset_folder or None).base
        files = sorted(base.glob(f"*/*{AU_JSON_SUFFIX}"))
    if not base.is_dir():
        raise UserFileNotFoundError(f"{base} is not a folder; check --mer-factory-output/--dataset-folder or --json-dir")
    return base, files


def read_raw(path: Path) -> dict:
    """The JSON object as written (order kept); load_au_analysis has already validated it."""
    return json.loads(path.read_text(encoding="utf-8-sig"))


def choose_frames(frames: List[AUFrame], peak_positions: List[int], n: int) -> List[int]:
    """Positions of up to ``n`` frames with active AUs: peaks first, the rest spread uniformly."""
    from my_affectgpt.processors.frame_sampling import emotion_peak_indices

    seen, candidates = set(), []
    for position, frame in enumerate(frames):
        if frame.active_aus and frame.frame not in seen:
            seen.add(frame.frame)
            candidates.append(position)
    if not candidates:
        raise SkipFile("no frame has active AUs (face never tracked?)")
    index_of = {position: i for i, position in enumerate(candidates)}
    peaks = [index_of[p] for p in peak_positions if p in index_of]
    return [candidates[i] for i in emotion_peak_indices(len(candidates), n, peaks, neighbours=0)]


def plan(path: Path, args: argparse.Namespace) -> Job:
    """What to describe in one file; raises SkipFile, or an error that fails the file."""
    from my_affectgpt.processors.au_json import load_au_analysis
    from my_affectgpt.processors.openface_csv import augment_from_csv, openface_csv_path
    from my_affectgpt.conversation.au_agent_prompts import build_user_message

    analysis = load_au_analysis(path)
    if analysis.summary_source == "summary_description" and not args.overwrite:
        raise SkipFile("already has summary_description (use --overwrite to redo)")
    per_frame_in_json = bool(analysis.frames)
    if not per_frame_in_json:
        csv_path = openface_csv_path(path)
        if not csv_path.is_file():
            raise UserFileNotFoundError(
                f"no per_frame_au_descriptions and no OpenFace CSV at {csv_path}; copy MER-Factory's CSV "
                "beside the JSON or re-run its AU pipeline"
            )
        analysis = augment_from_csv(analysis, csv_path)
    positions = choose_frames(analysis.frames, analysis.peak_positions, args.num_frames)
    frames = [analysis.frames[p] for p in positions]
    for frame in frames:
        build_user_message(frame_dict(frame))  # a bad AU key fails this file, not the batch
    return Job(path, read_raw(path), frames, positions, per_frame_in_json)


def frame_dict(frame: AUFrame) -> dict:
    return {"frame": frame.frame, "active_aus": frame.active_aus, "au_description": frame.au_description}


def fill(job: Job, replies: List[str]) -> None:
    """Put the replies and transcripts into ``job.data``."""
    from my_affectgpt.conversation.au_agent_prompts import build_user_message, format_transcript

    transcripts = {}
    for frame, position, reply in zip(job.frames, job.positions, replies):
        transcript = format_transcript(build_user_message(frame_dict(frame)), reply)
        if job.per_frame_in_json:
            job.data["per_frame_au_descriptions"][position]["fine_grained_description"] = transcript
        else:
            transcripts[str(frame.frame)] = transcript
    if transcripts:
        existing = job.data.get("fine_grained_descriptions")
        job.data["fine_grained_descriptions"] = {**(existing if isinstance(existing, dict) else {}), **transcripts}
    ordered = sorted(zip(job.frames, replies), key=lambda item: item[0].frame)
    job.data["summary_description"] = {str(frame.frame): reply for frame, reply in ordered}


def dump_json(data: dict, fh) -> None:
    """Serialise like MER-Factory: indented, non-ASCII text kept as is."""
    fh.write((json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))


def write_json(path: Path, data: dict) -> None:
    from my_affectgpt.common.atomic import write_file_atomic

    write_file_atomic(path, lambda fh: dump_json(data, fh))


class Filler:
    """Collects jobs until a generation batch is full, then describes and writes them."""

    def __init__(self, args: argparse.Namespace, report: Report):
        self.args = args
        self.report = report
        self.pending: List[Job] = []
        self.agent = None

    def add(self, job: Job) -> None:
        self.pending.append(job)
        if sum(len(j.frames) for j in self.pending) >= self.args.batch_size:
            self.flush()

    def _agent(self):
        if self.agent is None:
            import torch

            from my_affectgpt.models.au_agent import AUAgent

            device = self.args.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
            self.agent = AUAgent(
                self.args.base_model, self.args.lora_weights, device=device, max_new_tokens=self.args.max_new_tokens,
                batch_size=self.args.batch_size, dtype=self.args.dtype,
            )
        return self.agent

    def flush(self) -> None:
        from my_affectgpt.processors.facs import find_emotion_words

        jobs, self.pending = self.pending, []
        if not jobs:
            return
        items = [((str(job.path), frame.frame), frame_dict(frame)) for job in jobs for frame in job.frames]
        replies = iter(self._agent().describe(items))
        for job in jobs:
            job_replies = [next(replies) for _ in job.frames]
            try:
                fill(job, job_replies)
                write_json(job.path, job.data)
            except (OSError, UserError) as err:  # one file's problem; the others go on
                self.report.failed.append({"file": str(job.path), "reason": f"{type(err).__name__}: {err}"})
                continue
            self.report.done.append(str(job.path))
            for frame, reply in zip(job.frames, job_replies):
                words = find_emotion_words(reply)
                if words:
                    self.report.violations.append(
                        {"file": str(job.path), "frame": frame.frame, "words": words, "text": reply}
                    )


def print_report(report: Report, report_path: Path) -> None:
    state = " (interrupted)" if report.interrupted else ""
    print(
        f"AU descriptions{state}: {len(report.done)} done, {len(report.skipped)} skipped, "
        f"{len(report.failed)} failed; {len(report.violations)} description(s) contain emotion words"
    )
    for entry in report.failed[:SHOWN]:
        print(f"  FAILED {entry['file']}: {entry['reason']}")
    for entry in report.violations[:SHOWN]:
        print(f"  EMOTION WORDS {entry['file']} frame {entry['frame']}: {', '.join(entry['words'])}")
    hidden = max(0, len(report.failed) - SHOWN) + max(0, len(report.violations) - SHOWN)
    print(f"Report: {report_path}" + (f" ({hidden} more entries there)" if hidden else ""))


def main(argv: Optional[Sequence[str]] = None) -> int:
    from tqdm import tqdm


    args = parse_args(argv)
    try:
        base, files = find_json_files(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report_path = Path(args.report).expanduser() if args.report else base / REPORT_NAME
    report = Report()
    filler = Filler(args, report)
    try:
        for path in tqdm(files, desc="AU descriptions", unit="file"):
            try:
                filler.add(plan(path, args))
            except SkipFile as reason:
                report.skipped.append({"file": str(path), "reason": str(reason)})
            except (UserError, OSError) as err:  # one file's problem; the others go on
                report.failed.append({"file": str(path), "reason": f"{type(err).__name__}: {err}"})
        filler.flush()
    except KeyboardInterrupt:
        report.interrupted = True
    write_json(report_path, report.to_dict(dict(vars(args))))
    print_report(report, report_path)
    if report.interrupted:
        return 130
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
