"""Which video frames (or pre-extracted feature rows) a sample uses.

``frame_sampling: uniform`` takes the centre of ``n`` equal segments.
``frame_sampling: emotion_peak`` takes the AU JSON's peak frames, then their neighbours
within +-``neighbours`` frames (nearest first, peaks in the order given), then fills the
remaining slots uniformly from the frames not yet chosen. Indices come back sorted,
unique, at most ``n`` and inside ``[0, num_frames)``. Samples without peaks fall back
to uniform sampling; ``FrameSampler`` counts those and reports them in one line.

AU frames are mapped to the sampled timeline (video frames or feature rows) by, in
order of preference: the AU frame's timestamp and the video fps; the ratio of the two
frame rates; the ratio of the two frame counts (pre-extracted features span the whole
video); or unchanged when the timelines are the same.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence

from my_affectgpt.processors.au_json import AUAnalysis

logger = logging.getLogger("my_affectgpt")

STRATEGIES = ("uniform", "emotion_peak")


def _check(num_frames: int, n: int) -> None:
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if n < 1:
        raise ValueError(f"the number of frames to sample (frame_n_frms) must be >= 1, got {n}")


def uniform_indices(num_frames: int, n: int) -> list[int]:
    """The centre frame of each of ``n`` equal segments; every frame when there are <= n."""
    _check(num_frames, n)
    if num_frames <= n:
        return list(range(num_frames))
    return [(2 * i + 1) * num_frames // (2 * n) for i in range(n)]


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def map_to_video_frames(
    peaks: Sequence[int],
    num_video_frames: int,
    au_timestamps: Sequence[float | None] | None = None,
    video_fps: float | None = None,
    au_fps: float | None = None,
) -> list[int]:
    """Map 0-based AU-timeline frames to 0-based video frames (clipped into range).

    ``au_timestamps`` (seconds, one per peak, None/NaN allowed) are used with
    ``video_fps``; otherwise ``au_fps`` and ``video_fps`` give a rate ratio; otherwise
    the frames are taken as they are.
    """
    if num_video_frames < 1:
        raise ValueError(f"cannot map AU frames onto a timeline of {num_video_frames} frames")
    if au_timestamps is not None and len(au_timestamps) != len(peaks):
        raise ValueError(f"au_timestamps has {len(au_timestamps)} entries for {len(peaks)} peaks")
    for label, rate in (("video_fps", video_fps), ("au_fps", au_fps)):
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"{label} must be a positive frame rate, got {rate}")
    mapped = []
    for k, peak in enumerate(peaks):
        stamp = au_timestamps[k] if au_timestamps is not None else None
        if video_fps and stamp is not None and math.isfinite(stamp):
            frame = _round_half_up(stamp * video_fps)
        elif video_fps and au_fps:
            frame = _round_half_up(peak * video_fps / au_fps)
        else:
            frame = int(peak)
        mapped.append(min(max(frame, 0), num_video_frames - 1))
    return mapped


def emotion_peak_indices(
    num_video_frames: int,
    n: int,
    peaks: Sequence[int],
    au_timestamps: Sequence[float | None] | None = None,
    video_fps: float | None = None,
    au_fps: float | None = None,
    neighbours: int = 3,
) -> list[int]:
    """Peak frames, their neighbours, then a uniform fill (see the module docstring).

    ``peaks`` are 0-based frames on the AU timeline (OpenFace frame number - 1);
    ``au_timestamps``, ``video_fps`` and ``au_fps`` map them as ``map_to_video_frames``.
    With no peaks this equals ``uniform_indices``.
    """
    _check(num_video_frames, n)
    if neighbours < 0:
        raise ValueError(f"neighbours must be >= 0, got {neighbours}")
    if num_video_frames <= n:
        return list(range(num_video_frames))
    centres = list(dict.fromkeys(map_to_video_frames(peaks, num_video_frames, au_timestamps, video_fps, au_fps)))
    chosen: dict[int, None] = {}
    candidates = centres + [
        centre + sign * distance
        for distance in range(1, neighbours + 1)
        for centre in centres
        for sign in (-1, 1)
    ]
    for frame in candidates:
        if len(chosen) == n:
            break
        if 0 <= frame < num_video_frames:
            chosen.setdefault(frame, None)
    rest = [frame for frame in range(num_video_frames) if frame not in chosen]
    fill = uniform_indices(len(rest), n - len(chosen)) if len(chosen) < n else []
    return sorted([*chosen, *(rest[i] for i in fill)])


class FrameSampler:
    """Applies one dataset's ``frame_sampling`` strategy and counts uniform fallbacks.

    Counts are per process: with DataLoader workers each worker counts its own samples.
    """

    def __init__(self, strategy: str = "uniform", n: int = 8, neighbours: int = 3, dataset: str | None = None):
        if strategy not in STRATEGIES:
            raise ValueError(f"frame_sampling must be one of {list(STRATEGIES)}, got {strategy!r}")
        _check(0, n)
        self.strategy = strategy
        self.n = n
        self.neighbours = neighbours
        self.dataset = dataset
        self.samples = 0
        self.fallbacks: Counter[str] = Counter()
        self._last_reported: tuple[int, int] | None = None

    def sample(self, num_frames: int, analysis: AUAnalysis | None = None, video_fps: float | None = None) -> list[int]:
        """Indices into a timeline of ``num_frames`` frames (video frames or feature rows).

        ``video_fps`` is the timeline's frame rate when it is a decoded video; leave it
        None for pre-extracted features.
        """
        self.samples += 1
        if self.strategy == "uniform":
            return uniform_indices(num_frames, self.n)
        if analysis is None:
            self.fallbacks["without AU data"] += 1
            return uniform_indices(num_frames, self.n)
        if not analysis.peak_positions:
            self.fallbacks["without AU peaks"] += 1
            return uniform_indices(num_frames, self.n)
        return emotion_peak_indices(
            num_frames, self.n, neighbours=self.neighbours, **self._mapping(analysis, num_frames, video_fps)
        )

    @staticmethod
    def _mapping(analysis: AUAnalysis, num_frames: int, video_fps: float | None) -> dict:
        positions = analysis.peak_positions
        peaks = [analysis.frames[p].frame - 1 for p in positions]
        if video_fps is not None:
            stamps = [analysis.frames[p].timestamp for p in positions]
            au_fps = analysis.estimated_fps()
            if au_fps is not None or any(stamp is not None for stamp in stamps):
                return {"peaks": peaks, "au_timestamps": stamps, "video_fps": video_fps, "au_fps": au_fps}
        total = analysis.total_frames
        if total and total != num_frames:
            return {"peaks": peaks, "video_fps": num_frames, "au_fps": total}
        return {"peaks": peaks}

    def report(self) -> str | None:
        """One line with the uniform-fallback count, logged when it changed since the
        last report; None when nothing fell back."""
        fell_back = sum(self.fallbacks.values())
        if not fell_back:
            return None
        where = f" for {self.dataset}" if self.dataset else ""
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.fallbacks.items()))
        message = (
            f"frame_sampling=emotion_peak{where}: {fell_back} of {self.samples} sample(s) "
            f"fell back to uniform sampling ({reasons})"
        )
        if self._last_reported != (fell_back, self.samples):
            self._last_reported = (fell_back, self.samples)
            logger.info(message)
        return message
