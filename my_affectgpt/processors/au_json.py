"""Locating and reading MER-Factory AU analysis JSONs.

Three JSON shapes exist in the wild and every field is optional:

* extended: ``per_frame_au_descriptions``, ``au_info``, ``summary_description``
  (older files: ``fine_grained_descriptions``);
* upstream MER-Factory: ``source_path``, ``chronological_emotion_peaks``,
  ``overall_peak_au_description``;
* older upstream: ``video_id``, ``peak_au_text``, ``llm_facial_summary``.

``load_au_analysis`` reads any of them into one ``AUAnalysis``. A file that cannot be
parsed raises ``AUJsonError``. Malformed optional content (an out-of-range
``peak_index``, a non-numeric summary key, ...) is skipped; each file's skips are
counted in ``AUAnalysis.warnings`` and logged as one line naming the file.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from my_affectgpt.common.errors import UserError
from my_affectgpt.common.sample_names import check_sample_name

logger = logging.getLogger("my_affectgpt")

AU_JSON_SUFFIX = "_au_analysis.json"

SHAPE_EXTENDED = "extended"
SHAPE_UPSTREAM = "upstream"
SHAPE_UPSTREAM_OLD = "upstream_old"
SHAPE_MIXED = "mixed"
SHAPE_EMPTY = "empty"  # a JSON object holding none of the known keys

_EXTENDED_KEYS = frozenset(
    {"per_frame_au_descriptions", "au_info", "summary_description", "fine_grained_descriptions"}
)
_UPSTREAM_KEYS = frozenset({"source_path", "overall_peak_au_description"})
_UPSTREAM_OLD_KEYS = frozenset({"video_id", "peak_au_text", "llm_facial_summary"})
# Written by both upstream generations; it decides nothing on its own.
_SHARED_UPSTREAM_KEY = "chronological_emotion_peaks"


class AUJsonError(UserError, ValueError):
    """An AU analysis JSON that cannot be read at all."""


class AUJsonNotFoundError(FileNotFoundError):
    """No AU analysis JSON for a sample."""


# --------------------------------------------------------------------------- paths


def _validate_dataset_folder(dataset_folder: str | None) -> str | None:
    if dataset_folder is None or dataset_folder == "":
        return None
    folder = PurePath(dataset_folder)
    if folder.is_absolute() or ".." in folder.parts:
        raise ValueError(
            f"AU dataset folder {dataset_folder!r} must be a folder name relative to "
            "mer_factory_output (no absolute path, no '..')"
        )
    return dataset_folder


def _ends_with(root: Path, dataset_folder: str) -> bool:
    parts = PurePath(dataset_folder).parts
    return tuple(root.parts[-len(parts):]) == parts


def _json_in(base: Path, name: str) -> Path:
    return base / name / f"{name}{AU_JSON_SUFFIX}"


def au_json_path(mer_factory_output: str | os.PathLike, dataset_folder: str | None, name: str) -> Path:
    """``{mer_factory_output}/{dataset_folder}/{name}/{name}_au_analysis.json``.

    Pure path arithmetic (no filesystem access). A root that already ends with
    ``dataset_folder`` is not doubled; an empty ``dataset_folder`` means the root holds
    the sample folders directly. ``AUJsonLocator`` also inspects the filesystem.
    """
    check_sample_name(name)
    root = Path(mer_factory_output)
    folder = _validate_dataset_folder(dataset_folder)
    base = root if folder is None or _ends_with(root, folder) else root / folder
    return _json_in(base, name)


_logged_layouts: set[tuple[str, str | None]] = set()


class AUJsonLocator:
    """Finds ``{name}_au_analysis.json`` for one dataset under a user-configured root.

    The layout is decided once, on first use:

    * no dataset folder configured -> the root holds the sample folders;
    * the root already ends with the dataset folder -> the root is the dataset folder;
    * ``root/dataset_folder`` exists -> nested layout (the documented one);
    * the root directly holds ``<name>/<name>_au_analysis.json`` folders -> the root is
      the dataset folder (a user pointed the root one level too deep);
    * otherwise -> nested layout (files may not have been generated yet).

    The decision is logged once per (root, dataset folder) and process.
    """

    # Only this many entries of the root are inspected when looking for sample folders.
    _SCAN_LIMIT = 50

    def __init__(self, root: str | os.PathLike, dataset_folder: str | None):
        self.root = Path(root)
        self.dataset_folder = _validate_dataset_folder(dataset_folder)
        self._base: Path | None = None
        self.layout: str | None = None

    @property
    def base(self) -> Path:
        """The folder that holds the sample folders."""
        if self._base is None:
            self._base, self.layout = self._detect()
            key = (str(self.root), self.dataset_folder)
            if key not in _logged_layouts:
                _logged_layouts.add(key)
                logger.info(
                    "AU JSONs for dataset folder %r: %s -> %s",
                    self.dataset_folder, self.layout, _json_in(self._base, "<name>"),
                )
        return self._base

    def _detect(self) -> tuple[Path, str]:
        folder = self.dataset_folder
        if folder is None:
            return self.root, "no dataset folder configured, root holds the sample folders"
        if _ends_with(self.root, folder):
            return self.root, f"root already ends with {folder!r}, not doubling it"
        if (self.root / folder).is_dir():
            return self.root / folder, f"nested layout root/{folder}/<name>/"
        if self._root_holds_samples():
            return self.root, "root holds <name>/<name>_au_analysis.json directly"
        return self.root / folder, f"nested layout root/{folder}/<name>/ (not present yet)"

    def _root_holds_samples(self) -> bool:
        if not self.root.is_dir():
            return False
        with os.scandir(self.root) as entries:
            for entry in itertools.islice(entries, self._SCAN_LIMIT):
                if entry.is_dir() and _json_in(self.root, entry.name).is_file():
                    return True
        return False

    def path(self, name: str) -> Path:
        """Where the sample's JSON is expected (it may not exist)."""
        check_sample_name(name)
        return _json_in(self.base, name)

    def find(self, name: str) -> Path:
        """The sample's JSON; raises ``AUJsonNotFoundError`` when it is missing."""
        path = self.path(name)
        if not path.is_file():
            raise AUJsonNotFoundError(
                f"no AU analysis JSON for sample {name!r}: expected {path} ({self.layout}). "
                "Run MER-Factory's AU pipeline for this sample, or check mer_factory_output "
                "and the dataset's AU folder name."
            )
        return path


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class AUFrame:
    """One analysed video frame."""

    frame: int  # 1-based, as OpenFace numbers frames
    timestamp: float | None  # seconds; None when missing or NaN
    active_aus: dict[str, float]  # {"AU10_r": 1.06, ...}
    au_description: str  # "Upper lip raiser (intensity: 1.06), ..."
    is_peak: bool  # the file's is_peak_frame flag, or listed in au_info.peak_frames
    fine_grained_description: str = ""  # assistant part of the per-frame transcript


@dataclass(frozen=True)
class UpstreamPeak:
    """One entry of upstream ``chronological_emotion_peaks``."""

    time_s: float | None  # None for entries without a time, e.g. "neutral"
    emotion: str
    intensity: str | None  # "slight", "moderate", ...
    raw: str


@dataclass
class AUAnalysis:
    """Everything an AU JSON (optionally plus its OpenFace CSV) says about one video."""

    path: Path | None = None
    source_shape: str = SHAPE_EMPTY
    frames: list[AUFrame] = field(default_factory=list)
    peak_positions: list[int] = field(default_factory=list)  # 0-based positions into frames
    summary_descriptions: list[tuple[int, str]] = field(default_factory=list)
    summary_source: str | None = None  # the key summary_descriptions came from
    total_frames: int | None = None
    upstream_peaks: list[UpstreamPeak] = field(default_factory=list)
    overall_description: str | None = None
    facial_summary: str | None = None  # older upstream "llm_facial_summary"
    source_path: str | None = None
    video_id: str | None = None
    frames_source: str | None = None  # "json" | "openface_csv" | None
    warnings: list[str] = field(default_factory=list)

    @property
    def summary_texts(self) -> list[str]:
        """Summary descriptions in frame order (the realtime-CLIP AU input)."""
        return [text for _, text in self.summary_descriptions]

    @property
    def peak_frames(self) -> list[AUFrame]:
        return [self.frames[p] for p in self.peak_positions]

    def estimated_fps(self) -> float | None:
        """The AU timeline's frame rate, if known.

        Measured over the whole span of timed frames: timestamps are rounded (OpenFace
        writes milliseconds), so frame-to-frame rates would be off by a few percent.
        """
        timed = sorted((f.frame, f.timestamp) for f in self.frames if f.timestamp is not None)
        if len(timed) < 2:
            return None
        (first_frame, first_time), (last_frame, last_time) = timed[0], timed[-1]
        if last_frame <= first_frame or last_time <= first_time:
            return None
        return (last_frame - first_frame) / (last_time - first_time)


# --------------------------------------------------------------------------- value parsing


def _to_float(value: Any) -> float | None:
    """A finite float from a number or numeric string; None otherwise (NaN included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _to_int(value: Any) -> int | None:
    """An int from an int, an integral float or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = _to_float(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return value is True or (isinstance(value, (int, float)) and value == 1)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


_ASSISTANT_TURN = re.compile(r"(?:^|\n)[ \t]*(?:<\|im_start\|>)?assistant[ \t]*(?:\n|$)")


def assistant_text(transcript: str) -> str:
    """The assistant's answer in a "system\\n...\\nuser\\n...\\nassistant\\n..." transcript.

    Text without an assistant turn is returned stripped, as it is already clean.
    """
    turns = list(_ASSISTANT_TURN.finditer(transcript))
    answer = transcript[turns[-1].end():] if turns else transcript
    return answer.replace("<|im_end|>", "").strip()


_UPSTREAM_PEAK = re.compile(
    r"^\s*(?:peak\s+at\s+(?P<time>\S+?)\s*s?\s*:)?\s*(?P<emotion>[^()]*?)\s*"
    r"(?:\((?P<intensity>[^)]*)\))?\s*$",
    re.IGNORECASE,
)
_PEAK_PREFIX = re.compile(r"\s*peak\s+at\b", re.IGNORECASE)


def parse_upstream_peak(text: str) -> UpstreamPeak | None:
    """Parse "Peak at 10.20s: disgust (slight)" or "neutral"; None if unrecognisable."""
    match = _UPSTREAM_PEAK.match(text)
    if match is None or not match.group("emotion"):
        return None
    if match.group("time") is None and _PEAK_PREFIX.match(text):
        return None  # "Peak at ..." whose time part did not parse
    intensity = (match.group("intensity") or "").strip() or None
    return UpstreamPeak(
        time_s=_to_float(match.group("time")),
        emotion=match.group("emotion").strip(),
        intensity=intensity,
        raw=text,
    )


# --------------------------------------------------------------------------- loading


# Leading bytes of the files most often passed where an AU JSON belongs.
_FILE_SIGNATURES = (
    (4, b"ftyp", "an MP4/MOV video"),
    (0, b"RIFF", "an AVI video or WAV audio file"),
    (0, b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
    (0, b"\x00\x00\x01\xba", "an MPEG video"),
    (0, b"ID3", "an MP3 audio file"),
    (0, b"PK\x03\x04", "a zip archive (or .npz)"),
    (0, b"\x93NUMPY", "a NumPy .npy file"),
    (0, b"\x89PNG", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"\x1f\x8b", "a gzip archive"),
)
_TRUNCATED = (
    "It is probably truncated by a killed writer: regenerate it with MER-Factory (or the AU "
    "Agent fill command), or delete it so the sample is treated as having no AU data."
)


def _not_json_error(path: Path, what: str) -> AUJsonError:
    return AUJsonError(
        f"{path}: not a MER-Factory AU JSON ({what}). Point at the <name>{AU_JSON_SUFFIX} MER-Factory "
        "wrote for the sample (for a single clip: --au_json), not at the video or another file."
    )


def _binary_kind(raw: bytes) -> str | None:
    """What a file that is not text looks like (None: it may be text)."""
    for offset, signature, kind in _FILE_SIGNATURES:
        if raw[offset : offset + len(signature)] == signature:
            return kind
    return "a binary file: it holds NUL bytes" if b"\x00" in raw[:4096] else None


def _read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``. A cut-off file, a file of another format and JSON that is
    not an object each get their own message, since each has its own fix."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AUJsonNotFoundError(f"AU analysis JSON not found: {path}") from None
    kind = _binary_kind(raw)
    if kind is not None:
        raise _not_json_error(path, f"it looks like {kind}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        if err.reason == "unexpected end of data":  # a multi-byte character cut at the end
            raise AUJsonError(f"{path}: the file ends inside a character. {_TRUNCATED}") from None
        raise AUJsonError(
            f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); MER-Factory "
            "writes UTF-8: re-save the file as UTF-8, or regenerate it with MER-Factory."
        ) from None
    body = text.strip()
    if not body:
        raise AUJsonError(f"{path}: the file is empty. {_TRUNCATED}")
    if body[0] not in "{[":
        raise _not_json_error(path, f"it starts with {body[:20]!r}, not with '{{'")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.pos >= len(text.rstrip()):  # the text stopped before the JSON did
            raise AUJsonError(f"{path}: not valid JSON, it ends early ({err}). {_TRUNCATED}") from None
        raise AUJsonError(
            f"{path}: not valid JSON ({err}); fix that spot or regenerate the file with MER-Factory."
        ) from None
    if not isinstance(data, dict):
        raise AUJsonError(
            f"{path}: the top level is a JSON {type(data).__name__}, expected an object "
            f"with MER-Factory AU keys. Check that the path points at a <name>{AU_JSON_SUFFIX} "
            "written by MER-Factory."
        )
    return data


def _classify(keys: set[str]) -> str:
    shapes = set()
    if keys & _EXTENDED_KEYS:
        shapes.add(SHAPE_EXTENDED)
    if keys & _UPSTREAM_KEYS:
        shapes.add(SHAPE_UPSTREAM)
    if keys & _UPSTREAM_OLD_KEYS:
        shapes.add(SHAPE_UPSTREAM_OLD)
    if _SHARED_UPSTREAM_KEY in keys and not shapes & {SHAPE_UPSTREAM, SHAPE_UPSTREAM_OLD}:
        shapes.add(SHAPE_UPSTREAM)
    if not shapes:
        return SHAPE_EMPTY
    return shapes.pop() if len(shapes) == 1 else SHAPE_MIXED


def _parse_active_aus(value: Any, frame: int, issues: list[str]) -> dict[str, float]:
    if value is None or value == [] or value == "":
        return {}
    if not isinstance(value, dict):
        issues.append(f"frame {frame}: active_aus is a {type(value).__name__}, not an object; ignored")
        return {}
    active = {}
    for key, raw in value.items():
        number = _to_float(raw)
        if number is None:
            issues.append(f"frame {frame}: active_aus[{key!r}] = {raw!r} is not a finite number; ignored")
        else:
            active[str(key).strip()] = number
    return active


def _parse_frames(value: Any, issues: list[str]) -> list[AUFrame]:
    """Per-frame records, kept in file order: ``peak_index`` refers to these positions."""
    if value is None:
        return []
    if not isinstance(value, list):
        issues.append(f"per_frame_au_descriptions is a {type(value).__name__}, not a list; ignored")
        return []
    frames = []
    for position, entry in enumerate(value):
        if not isinstance(entry, dict):
            issues.append(
                f"per_frame_au_descriptions[{position}] is not an object; "
                f"kept as an empty frame {position + 1} to preserve peak positions"
            )
            frames.append(AUFrame(frame=position + 1, timestamp=None, active_aus={}, au_description="", is_peak=False))
            continue
        frame = _to_int(entry.get("frame"))
        if frame is None or frame < 1:
            issues.append(
                f"per_frame_au_descriptions[{position}]: frame {entry.get('frame')!r} is not a "
                f"1-based frame number; using its position ({position + 1})"
            )
            frame = position + 1
        transcript = entry.get("fine_grained_description")
        frames.append(
            AUFrame(
                frame=frame,
                timestamp=_to_float(entry.get("timestamp")),
                active_aus=_parse_active_aus(entry.get("active_aus"), frame, issues),
                au_description=_text(entry.get("au_description")) or "",
                is_peak=_to_bool(entry.get("is_peak_frame")),
                fine_grained_description=assistant_text(transcript) if _text(transcript) else "",
            )
        )
    return frames


def _parse_au_info(value: Any, num_frames: int, issues: list[str]) -> tuple[list[int], int | None]:
    """(valid peak positions, total_frames) from ``au_info``."""
    if value is None:
        return [], None
    if not isinstance(value, dict):
        issues.append(f"au_info is a {type(value).__name__}, not an object; ignored")
        return [], None
    total = _to_int(value.get("total_frames"))
    if value.get("total_frames") is not None and (total is None or total < 0):
        issues.append(f"au_info.total_frames = {value.get('total_frames')!r} is not a frame count; ignored")
        total = None
    peaks_raw = value.get("peak_frames") or []
    if not isinstance(peaks_raw, list):
        issues.append(f"au_info.peak_frames is a {type(peaks_raw).__name__}, not a list; ignored")
        peaks_raw = []
    positions, invalid, out_of_range = set(), [], []
    for entry in peaks_raw:
        raw = entry.get("peak_index") if isinstance(entry, dict) else entry
        index = _to_int(raw) if isinstance(entry, dict) else None
        if index is None:
            invalid.append(raw)
        elif 0 <= index < num_frames:
            positions.add(index)
        else:
            out_of_range.append(index)
    if invalid:
        issues.append(f"ignored {len(invalid)} au_info.peak_frames entries without an integer peak_index: {invalid}")
    if out_of_range:
        issues.append(
            f"ignored {len(out_of_range)} peak_index value(s) outside the "
            f"{num_frames} per-frame entries [0, {num_frames}): {out_of_range}"
        )
    return sorted(positions), total


def _parse_keyed_texts(value: Any, key: str, issues: list[str], transcripts: bool) -> list[tuple[int, str]]:
    """``{"<frame>": text}`` sorted by frame number (keys are strings, in any order)."""
    if value is None:
        return []
    if not isinstance(value, dict):
        issues.append(f"{key} is a {type(value).__name__}, not an object keyed by frame; ignored")
        return []
    texts, bad_keys, empty = [], [], []
    for raw_key, raw_text in value.items():
        frame = _to_int(raw_key)
        text = _text(raw_text) or ""
        if transcripts:
            text = assistant_text(text)
        if frame is None:
            bad_keys.append(raw_key)
        elif not text:
            empty.append(frame)
        else:
            texts.append((frame, text))
    if bad_keys:
        issues.append(f"ignored {len(bad_keys)} {key} key(s) that are not frame numbers: {bad_keys}")
    if empty:
        issues.append(f"ignored {len(empty)} empty {key} text(s) at frame(s) {sorted(empty)}")
    return sorted(texts, key=lambda item: item[0])


def _summaries(
    data: dict[str, Any], frames: list[AUFrame], issues: list[str]
) -> tuple[list[tuple[int, str]], str | None]:
    """Clean per-frame summaries: ``summary_description``, else the assistant part of
    ``fine_grained_descriptions``, else of the per-frame ``fine_grained_description``."""
    summary = _parse_keyed_texts(data.get("summary_description"), "summary_description", issues, transcripts=False)
    if summary:
        return summary, "summary_description"
    fine = _parse_keyed_texts(data.get("fine_grained_descriptions"), "fine_grained_descriptions", issues, transcripts=True)
    if fine:
        return fine, "fine_grained_descriptions"
    per_frame = sorted(
        ((f.frame, f.fine_grained_description) for f in frames if f.fine_grained_description),
        key=lambda item: item[0],
    )
    return per_frame, ("fine_grained_description" if per_frame else None)


def _parse_upstream_peaks(value: Any, issues: list[str]) -> list[UpstreamPeak]:
    if value is None:
        return []
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list):
        issues.append(f"chronological_emotion_peaks is a {type(value).__name__}, not a list; ignored")
        return []
    peaks, unparsed = [], []
    for entry in entries:
        peak = parse_upstream_peak(entry) if isinstance(entry, str) else None
        if peak is None:
            unparsed.append(entry)
        else:
            peaks.append(peak)
    if unparsed:
        issues.append(f"ignored {len(unparsed)} unrecognised chronological_emotion_peaks entries: {unparsed}")
    return peaks


def load_au_analysis(path: str | os.PathLike) -> AUAnalysis:
    """Read any MER-Factory AU JSON shape (see the module docstring).

    Raises ``AUJsonNotFoundError`` for a missing file and ``AUJsonError`` for a file
    that is empty, truncated, not JSON or not a JSON object.
    """
    path = Path(path)
    data = _read_json_object(path)
    issues: list[str] = []  # skipped content, reported as one counted line
    frames = _parse_frames(data.get("per_frame_au_descriptions"), issues)
    peak_positions, total_frames = _parse_au_info(data.get("au_info"), len(frames), issues)
    for position in peak_positions:
        frames[position] = dataclasses.replace(frames[position], is_peak=True)
    summaries, summary_source = _summaries(data, frames, issues)
    analysis = AUAnalysis(
        path=path,
        source_shape=_classify(set(data)),
        frames=frames,
        peak_positions=peak_positions,
        summary_descriptions=summaries,
        summary_source=summary_source,
        total_frames=total_frames if total_frames is not None else (len(frames) or None),
        upstream_peaks=_parse_upstream_peaks(data.get(_SHARED_UPSTREAM_KEY), issues),
        overall_description=_text(data.get("overall_peak_au_description")) or _text(data.get("peak_au_text")),
        facial_summary=_text(data.get("llm_facial_summary")),
        source_path=_text(data.get("source_path")),
        video_id=_text(data.get("video_id")),
        frames_source="json" if frames else None,
        warnings=issues,
    )
    if analysis.source_shape == SHAPE_EMPTY:
        analysis.warnings.append(f"no known AU keys (found: {sorted(data)[:10]})")
    if analysis.warnings:
        logger.warning(
            "%s: %d problem(s) skipped: %s", path, len(analysis.warnings), "; ".join(analysis.warnings)
        )
    return analysis
