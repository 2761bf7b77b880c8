"""OpenFace 2.x CSVs: per-frame AUs, AU descriptions and emotion-peak detection.

Upstream MER-Factory keeps only three summary keys in ``{name}_au_analysis.json`` but
leaves OpenFace's ``{name}.csv`` beside it. ``augment_from_csv`` rebuilds what the
extended JSON shape would hold (per-frame ``active_aus``, ``au_description`` and peak
positions) from that CSV so the AU Agent and ``emotion_peak`` frame sampling work on
upstream output too.

Rules used here:

* ``AUxx_r`` intensities are clipped to [0, 5] (OpenFace's scale; raw regressor output
  is slightly negative or above 5 when the CSV was not post-processed).
* An AU is *active* in a frame when its clipped intensity is at least
  ``ACTIVE_INTENSITY`` (0.8) and the frame's ``success`` flag is set. With this value
  the description of the fixture's peak frame equals upstream's
  ``overall_peak_au_description``.
* Peak frames (``detect_peaks``): a frame's expressiveness score is the sum of its
  clipped intensities, blink (AU45) excluded because blinks are not expressions. A
  frame is a peak when its score is the largest within +-``window`` frames (the first
  frame of a plateau wins) and above ``mean + std_factor * std`` of the video's
  scores; at most ``max_peaks`` peaks are kept, highest scores first, and returned in
  chronological order. Frames where face tracking failed never peak.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from my_affectgpt.common.errors import UserError, UserFileNotFoundError
from my_affectgpt.processors.au_json import AU_JSON_SUFFIX, AUAnalysis, AUFrame, UpstreamPeak, load_au_analysis
from my_affectgpt.processors.facs import au_code, au_name

logger = logging.getLogger("my_affectgpt")

ACTIVE_INTENSITY = 0.8
MAX_INTENSITY = 5.0
PEAK_EXCLUDED_AUS = frozenset({"AU45"})

_INTENSITY_COLUMN = re.compile(r"^AU\d+_r$")
_PRESENCE_COLUMN = re.compile(r"^AU\d+_c$")


class OpenFaceCSVError(UserError, ValueError):
    """An OpenFace CSV that cannot be used."""


@dataclass(frozen=True)
class OpenFaceFrame:
    """One row of an OpenFace CSV (one tracked face in one frame)."""

    frame: int  # 1-based
    timestamp: float | None
    confidence: float | None
    success: bool
    intensities: dict[str, float]  # {"AU01_r": 0.43, ...}, clipped to [0, 5]
    presence: dict[str, bool]  # {"AU01_c": False, ...}

    def active_aus(self, min_intensity: float = ACTIVE_INTENSITY) -> dict[str, float]:
        """Intensities of at least ``min_intensity``; none when tracking failed."""
        if not self.success:
            return {}
        return {key: value for key, value in self.intensities.items() if value >= min_intensity}


def openface_csv_path(au_json: str | os.PathLike) -> Path:
    """The ``{name}.csv`` that upstream MER-Factory leaves beside ``{name}_au_analysis.json``."""
    au_json = Path(au_json)
    if not au_json.name.endswith(AU_JSON_SUFFIX):
        raise UserError(f"{au_json} is not named <name>{AU_JSON_SUFFIX}")
    return au_json.with_name(au_json.name[: -len(AU_JSON_SUFFIX)] + ".csv")


def describe_aus(active_aus: Mapping[str, float]) -> str:
    """``"Upper lip raiser (intensity: 1.06), Jaw drop (intensity: 2.08)"`` in AU order.

    The style of MER-Factory's ``au_description``. Keys may be "AU10_r" or "AU10".
    """
    items = []
    for key, value in active_aus.items():
        code = au_code(key)
        if code is None:
            raise UserError(f"active_aus key {key!r} is not an action unit (expected e.g. 'AU10_r')")
        items.append((code, value))
    return ", ".join(f"{au_name(code)} (intensity: {value:.2f})" for code, value in sorted(items))


# --------------------------------------------------------------------------- loading


def _numeric(df, column: str, path: Path):
    import pandas as pd

    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() & df[column].notna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise OpenFaceCSVError(
            f"{path}: column {column!r} holds a non-numeric value {df[column].iloc[row]!r} in "
            f"data row {row + 1}; re-run OpenFace FeatureExtraction for this video"
        )
    return values


def _read_table(path: Path):
    import pandas as pd

    fix = "re-run OpenFace FeatureExtraction (with -aus) for this video"
    if not path.is_file():
        raise UserFileNotFoundError(f"OpenFace CSV not found: {path}")
    try:
        df = pd.read_csv(path, skipinitialspace=True, dtype=str)
    except pd.errors.EmptyDataError:
        raise OpenFaceCSVError(f"{path}: the file is empty; {fix}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise OpenFaceCSVError(f"{path}: not a readable CSV ({err}); {fix}") from None
    df.columns = [str(column).strip() for column in df.columns]
    if df.empty:
        raise OpenFaceCSVError(f"{path}: the CSV has a header but no frames; {fix}")
    if not any(_INTENSITY_COLUMN.match(column) for column in df.columns):
        raise OpenFaceCSVError(f"{path}: no AUxx_r intensity columns (found {list(df.columns)[:8]}...); {fix}")
    return df


def _best_row_per_frame(frame_numbers: np.ndarray, tracked: np.ndarray, confidence: np.ndarray) -> dict[int, int]:
    """{frame: row}, preferring tracked rows, then higher confidence, then the first row."""
    rank = list(zip(tracked, np.nan_to_num(confidence, nan=-1.0)))
    best: dict[int, int] = {}
    for row, frame in enumerate(frame_numbers):
        kept = best.get(int(frame))
        if kept is None or rank[row] > rank[kept]:
            best[int(frame)] = row
    return best


def load_openface_csv(path: str | os.PathLike) -> list[OpenFaceFrame]:
    """Per-frame records of an OpenFace CSV, sorted by frame.

    Header names may carry leading spaces. Without a ``frame`` column frames are
    numbered by row. When a frame has several rows (several faces), the tracked row with
    the highest confidence is kept and the others are counted in one warning. A row cut
    short by a killed writer keeps the values it has; a row with no intensity at all
    counts as a failed frame.
    """
    path = Path(path)
    df = _read_table(path)
    intensity_columns = [c for c in df.columns if _INTENSITY_COLUMN.match(c)]
    presence_columns = [c for c in df.columns if _PRESENCE_COLUMN.match(c)]
    numbers = {c: _numeric(df, c, path) for c in intensity_columns + presence_columns}
    for column in ("frame", "timestamp", "confidence", "success"):
        if column in df.columns:
            numbers[column] = _numeric(df, column, path)

    if "frame" in numbers and numbers["frame"].notna().all():
        frame_numbers = numbers["frame"].astype(int).to_numpy()
    else:
        logger.warning("%s: no usable 'frame' column; numbering frames by row", path)
        frame_numbers = np.arange(1, len(df) + 1)
    intensities = np.clip(np.column_stack([numbers[c].to_numpy(float) for c in intensity_columns]), 0.0, MAX_INTENSITY)
    presence = {c: numbers[c].to_numpy(float) for c in presence_columns}
    tracked = np.isfinite(intensities).any(axis=1)
    if not tracked.all():
        logger.warning(
            "%s: %d row(s) hold no AU intensity (cut short by a killed writer?); treated as untracked frames",
            path, int((~tracked).sum()),
        )
    if "success" in numbers:
        tracked &= numbers["success"].to_numpy(float) == 1
    confidence = numbers["confidence"].to_numpy(float) if "confidence" in numbers else np.full(len(df), np.nan)
    timestamps = numbers["timestamp"].to_numpy(float) if "timestamp" in numbers else np.full(len(df), np.nan)

    best_row = _best_row_per_frame(frame_numbers, tracked, confidence)
    if len(best_row) < len(df):
        logger.warning(
            "%s: %d row(s) repeat a frame number (several faces?); kept the best-tracked face per frame",
            path, len(df) - len(best_row),
        )

    frames = []
    for frame in sorted(best_row):
        row = best_row[frame]
        frames.append(
            OpenFaceFrame(
                frame=frame,
                timestamp=float(timestamps[row]) if np.isfinite(timestamps[row]) else None,
                confidence=float(confidence[row]) if np.isfinite(confidence[row]) else None,
                success=bool(tracked[row]),
                intensities={
                    c: float(v) for c, v in zip(intensity_columns, intensities[row]) if np.isfinite(v)
                },
                presence={c: bool(values[row] == 1) for c, values in presence.items() if np.isfinite(values[row])},
            )
        )
    return frames


# --------------------------------------------------------------------------- peaks


def peak_scores(frames: Sequence[OpenFaceFrame]) -> np.ndarray:
    """Per-frame expressiveness: summed clipped intensities without AU45; NaN if untracked."""
    return np.array(
        [
            sum(v for k, v in f.intensities.items() if au_code(k) not in PEAK_EXCLUDED_AUS) if f.success else np.nan
            for f in frames
        ],
        dtype=float,
    )


def detect_peaks(
    frames: Sequence[OpenFaceFrame], max_peaks: int = 3, window: int = 5, std_factor: float = 1.0
) -> list[int]:
    """0-based positions of emotion-peak frames (rule in the module docstring)."""
    scores = peak_scores(frames)
    tracked = np.isfinite(scores)
    if max_peaks < 1 or not tracked.any():
        return []
    threshold = scores[tracked].mean() + std_factor * scores[tracked].std()
    filled = np.where(tracked, scores, -np.inf)
    candidates = []
    for i in np.flatnonzero(tracked & (filled > threshold)):
        lo, hi = max(0, i - window), min(len(filled), i + window + 1)
        neighbourhood = filled[lo:hi]
        if filled[i] == neighbourhood.max() and lo + int(neighbourhood.argmax()) == i:
            candidates.append(int(i))
    strongest = sorted(candidates, key=lambda i: (-filled[i], i))[:max_peaks]
    return sorted(strongest)


def _positions_of_upstream_peaks(peaks: Sequence[UpstreamPeak], frames: Sequence[OpenFaceFrame]) -> list[int]:
    """CSV positions nearest to upstream's timed peaks, within one frame interval."""
    timed = [(i, f.timestamp) for i, f in enumerate(frames) if f.timestamp is not None]
    if len(timed) < 2:
        return []
    positions = np.array([i for i, _ in timed])
    times = np.array([t for _, t in timed])
    tolerance = float(np.median(np.diff(times))) + 1e-6
    found, unmatched = set(), []
    for peak in peaks:
        if peak.time_s is None:
            continue
        nearest = int(np.abs(times - peak.time_s).argmin())
        if abs(times[nearest] - peak.time_s) <= tolerance:
            found.add(int(positions[nearest]))
        else:
            unmatched.append(peak.raw)
    if unmatched:
        logger.warning("upstream peaks with no OpenFace frame at their time, ignored: %s", unmatched)
    return sorted(found)


def augment_from_csv(
    analysis: AUAnalysis, csv_path: str | os.PathLike, min_intensity: float = ACTIVE_INTENSITY, max_peaks: int = 3
) -> AUAnalysis:
    """Fill per-frame AU data from the OpenFace CSV into an analysis that has none.

    Peaks are upstream's own timed ``chronological_emotion_peaks`` mapped to the nearest
    CSV frame; when there are none, ``detect_peaks`` picks them. An analysis that already
    has per-frame data is returned unchanged: the JSON's own data wins.
    """
    if analysis.frames:
        return analysis
    of_frames = load_openface_csv(csv_path)
    peaks = _positions_of_upstream_peaks(analysis.upstream_peaks, of_frames) or detect_peaks(
        of_frames, max_peaks=max_peaks
    )
    peak_set = set(peaks)
    frames = []
    for position, of_frame in enumerate(of_frames):
        active = of_frame.active_aus(min_intensity)
        frames.append(
            AUFrame(
                frame=of_frame.frame,
                timestamp=of_frame.timestamp,
                active_aus=active,
                au_description=describe_aus(active),
                is_peak=position in peak_set,
            )
        )
    return dataclasses.replace(
        analysis,
        frames=frames,
        peak_positions=peaks,
        total_frames=len(frames),
        frames_source="openface_csv",
    )


def load_au_analysis_with_csv(json_path: str | os.PathLike) -> AUAnalysis:
    """The AU JSON, with per-frame data rebuilt from the OpenFace CSV beside it when the JSON
    has none (what upstream MER-Factory leaves)."""
    analysis = load_au_analysis(json_path)
    csv_path = openface_csv_path(json_path)
    if not analysis.frames and csv_path.is_file():
        analysis = augment_from_csv(analysis, csv_path)
    return analysis
