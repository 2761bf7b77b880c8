"""Frame sampling: expected indices below are worked out by hand."""

import logging
import random
from pathlib import Path

import pytest

from my_affectgpt.processors.au_json import AUAnalysis, AUFrame, load_au_analysis
from my_affectgpt.processors.frame_sampling import (
    FrameSampler,
    emotion_peak_indices,
    map_to_video_frames,
    uniform_indices,
)
from my_affectgpt.processors.openface_csv import augment_from_csv

DATA = Path(__file__).parent / "data" / "au"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mer_factory_upstream"


# --------------------------------------------------------------------------- uniform


def test_uniform_takes_segment_centres():
    # segments of 2.5 frames: centres 1.25, 3.75, 6.25, 8.75
    assert uniform_indices(10, 4) == [1, 3, 6, 8]
    # segments of 27.875 frames: centres 13.9, 41.8, 69.7, ...
    assert uniform_indices(223, 8) == [13, 41, 69, 97, 125, 153, 181, 209]
    assert uniform_indices(9, 1) == [4]


def test_uniform_with_few_frames_returns_all():
    assert uniform_indices(5, 8) == [0, 1, 2, 3, 4]
    assert uniform_indices(8, 8) == list(range(8))
    assert uniform_indices(0, 8) == []


def test_uniform_rejects_bad_arguments():
    with pytest.raises(ValueError, match="frame_n_frms"):
        uniform_indices(10, 0)
    with pytest.raises(ValueError, match="num_frames"):
        uniform_indices(-1, 8)


# --------------------------------------------------------------------------- emotion_peak


def test_single_peak_with_three_neighbours_and_one_fill():
    # peak 50 + 49,51,48,52,47,53 = 7; the fill takes the middle of the 93 other frames
    # (rest[46] = 46, since frames 0..46 come first)
    assert emotion_peak_indices(100, 8, [50]) == [46, 47, 48, 49, 50, 51, 52, 53]


def test_single_peak_one_neighbour_uniform_fill():
    # 10 + 9, 11; 5 fills from the 97 others at positions 9, 29, 48, 67, 87
    # rest = [0..8, 12..99] -> 12, 32, 51, 70, 90
    assert emotion_peak_indices(100, 8, [10], neighbours=1) == [9, 10, 11, 12, 32, 51, 70, 90]


def test_peak_at_the_start_keeps_indices_in_range():
    # 0 + 1, 2, 3 (negative neighbours dropped); 4 fills from rest = [4..99] at 12, 36, 60, 84
    assert emotion_peak_indices(100, 8, [0]) == [0, 1, 2, 3, 16, 40, 64, 88]


def test_two_peaks_neighbours_nearest_first_until_full():
    # 99, 10; distance 1: 98, (100 out), 9, 11; distance 2: 97, (101 out), 8, 12 -> full
    assert emotion_peak_indices(100, 8, [99, 10]) == [8, 9, 10, 11, 12, 97, 98, 99]


def test_more_peaks_than_slots_keeps_the_first_peaks():
    assert emotion_peak_indices(100, 3, [70, 20, 40, 90]) == [20, 40, 70]


def test_duplicate_and_overlapping_peaks():
    # 20 and 22 share neighbours: 20, 22, 19, 21, 21(dup), 23, 18, 20(dup), 24 -> 7 unique
    assert emotion_peak_indices(100, 7, [20, 22, 20]) == [18, 19, 20, 21, 22, 23, 24]


def test_no_peaks_is_uniform():
    assert emotion_peak_indices(100, 8, []) == uniform_indices(100, 8)


def test_few_frames_returns_all():
    assert emotion_peak_indices(6, 8, [3]) == [0, 1, 2, 3, 4, 5]
    assert emotion_peak_indices(0, 8, [3]) == []


def test_mapping_by_timestamp():
    # 2.0 s at 25 fps is video frame 50, whatever the AU frame number says
    assert emotion_peak_indices(100, 8, [60], au_timestamps=[2.0], video_fps=25) == [46, 47, 48, 49, 50, 51, 52, 53]


def test_mapping_by_fps_ratio_when_timestamp_is_missing():
    # AU frame 60 at 30 fps -> video frame 30 at 15 fps; 27..33 + fill rest[46] = 53
    assert emotion_peak_indices(100, 8, [60], au_timestamps=[None], video_fps=15, au_fps=30) == [
        27, 28, 29, 30, 31, 32, 33, 53,
    ]
    assert emotion_peak_indices(100, 8, [60], au_timestamps=[float("nan")], video_fps=15, au_fps=30) == [
        27, 28, 29, 30, 31, 32, 33, 53,
    ]


def test_map_to_video_frames_clips_and_validates():
    assert map_to_video_frames([5, 500], 100) == [5, 99]
    assert map_to_video_frames([0], 100, au_timestamps=[-0.5], video_fps=25) == [0]
    assert map_to_video_frames([7], 100, au_timestamps=[0.1], video_fps=25) == [3]  # 2.5 rounds up
    with pytest.raises(ValueError, match="au_timestamps"):
        map_to_video_frames([1, 2], 100, au_timestamps=[0.1])
    with pytest.raises(ValueError, match="video_fps"):
        map_to_video_frames([1], 100, video_fps=0)
    with pytest.raises(ValueError, match="timeline"):
        map_to_video_frames([1], 0)


def test_emotion_peak_invariants_on_random_cases():
    rng = random.Random(0)
    for _ in range(300):
        num_frames, n = rng.randint(0, 60), rng.randint(1, 12)
        peaks = [rng.randint(-5, 70) for _ in range(rng.randint(0, 4))]
        indices = emotion_peak_indices(num_frames, n, peaks, neighbours=rng.randint(0, 4))
        assert indices == sorted(set(indices))
        assert len(indices) == min(n, num_frames)
        assert all(0 <= i < num_frames for i in indices)
        mapped = list(dict.fromkeys(min(max(p, 0), num_frames - 1) for p in peaks)) if num_frames else []
        assert set(mapped[:n]) <= set(indices)


# --------------------------------------------------------------------------- FrameSampler


def _analysis(peak_frames, num_frames=100, timestamps=False):
    frames = [
        AUFrame(frame=i, timestamp=(i - 1) / 10 if timestamps else None, active_aus={}, au_description="",
                is_peak=i in peak_frames)
        for i in range(1, num_frames + 1)
    ]
    return AUAnalysis(frames=frames, peak_positions=[f - 1 for f in peak_frames], total_frames=num_frames)


def test_sampler_uniform_ignores_au_data():
    sampler = FrameSampler("uniform", 4)
    assert sampler.sample(10, _analysis([5], num_frames=10)) == [1, 3, 6, 8]
    assert sampler.report() is None


def test_sampler_emotion_peak_same_timeline():
    # AU frame 51 is video frame 50 when both timelines have 100 frames
    assert FrameSampler("emotion_peak", 8).sample(100, _analysis([51])) == [46, 47, 48, 49, 50, 51, 52, 53]


def test_sampler_maps_to_preextracted_feature_rows():
    # 100 AU frames onto 20 feature rows: AU frame 51 (index 50) -> row 10; n=3, neighbours 9, 11
    assert FrameSampler("emotion_peak", 3).sample(20, _analysis([51])) == [9, 10, 11]


def test_sampler_maps_by_timestamp_with_video_fps():
    # AU frame 51 at 10 fps is 5.0 s -> video frame 150 at 30 fps
    sampler = FrameSampler("emotion_peak", 3, neighbours=1)
    assert sampler.sample(300, _analysis([51], timestamps=True), video_fps=30) == [149, 150, 151]


def test_sampler_counts_fallbacks_and_reports_once(caplog):
    caplog.set_level(logging.INFO, logger="my_affectgpt")
    sampler = FrameSampler("emotion_peak", 4, dataset="MER2023")
    assert sampler.sample(10) == [1, 3, 6, 8]  # no AU data
    assert sampler.sample(10, AUAnalysis()) == [1, 3, 6, 8]  # no peaks
    assert sampler.sample(10, load_au_analysis(DATA / "extended_fine_grained_only.json")) == [1, 3, 6, 8]
    sampler.sample(100, _analysis([51]))
    message = sampler.report()
    assert message == (
        "frame_sampling=emotion_peak for MER2023: 3 of 4 sample(s) fell back to uniform sampling "
        "(1 without AU data, 2 without AU peaks)"
    )
    assert sampler.report() == message  # unchanged counts are not logged again
    logged = [r.getMessage() for r in caplog.records if "fell back" in r.getMessage()]
    assert logged == [message]
    sampler.sample(10)
    sampler.report()
    assert len([r for r in caplog.records if "fell back" in r.getMessage()]) == 2


def test_sampler_validates_its_config():
    with pytest.raises(ValueError, match="frame_sampling must be one of"):
        FrameSampler("random", 8)
    with pytest.raises(ValueError, match="frame_n_frms"):
        FrameSampler("uniform", 0)


def test_sampler_on_upstream_fixture_with_csv():
    json_path, csv_path = FIXTURES / "default_au_analysis.json", FIXTURES / "default_openface.csv"
    analysis = augment_from_csv(load_au_analysis(json_path), csv_path)
    sampler = FrameSampler("emotion_peak", 8)
    # peaks at 10.2 s, 11.733 s, 14.733 s -> 153, 176, 221 at 15 fps; distance 1 fills the rest:
    # 152, 154, 175, 177, 220 (the 8th slot), 222 does not fit
    assert sampler.sample(223, analysis, video_fps=15) == [152, 153, 154, 175, 176, 177, 220, 221]
    # the same video decoded at 30 fps: 306, 352, 442 (timestamps x 30)
    assert FrameSampler("emotion_peak", 3, neighbours=0).sample(446, analysis, video_fps=30) == [306, 352, 442]
    # 16 pre-extracted rows: 153*16/223 = 10.98 -> 11, 12.63 -> 13, 15.86 -> 15 (clipped); then 10
    assert FrameSampler("emotion_peak", 4).sample(16, analysis) == [10, 11, 13, 15]
    assert sampler.report() is None
