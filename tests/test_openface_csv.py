"""OpenFace CSVs, AU descriptions, peak detection, CSV augmentation and the FACS tables."""

import dataclasses
import logging
import math
from pathlib import Path

import pytest

from my_affectgpt.common.errors import UserError
from my_affectgpt.processors.au_json import AUAnalysis, UpstreamPeak, load_au_analysis
from my_affectgpt.processors.facs import AU_NAMES, au_code, au_name, find_emotion_words
from my_affectgpt.processors.openface_csv import (
    OpenFaceCSVError,
    OpenFaceFrame,
    augment_from_csv,
    describe_aus,
    detect_peaks,
    load_openface_csv,
    openface_csv_path,
)

DATA = Path(__file__).parent / "data" / "au"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mer_factory_upstream"


@pytest.fixture(scope="module")
def upstream_fixture():
    json_path, csv_path = FIXTURES / "default_au_analysis.json", FIXTURES / "default_openface.csv"
    return json_path, csv_path


# --------------------------------------------------------------------------- loading


def test_load_small_csv(caplog):
    caplog.set_level(logging.WARNING, logger="my_affectgpt")
    frames = load_openface_csv(DATA / "openface_small.csv")
    assert [f.frame for f in frames] == [1, 2, 3, 4]
    first = frames[0]
    assert first.timestamp == 0.0 and first.confidence == 0.98 and first.success
    assert first.intensities == {"AU01_r": 0.43, "AU06_r": 0.1, "AU12_r": 0.85, "AU25_r": 0.2, "AU45_r": 1.3}
    assert first.presence == {"AU01_c": False, "AU12_c": True, "AU28_c": False}
    # one row repeats frame 4 (a second face): the more confident face 1 is kept, and counted
    assert frames[3].confidence == 0.95 and frames[3].intensities["AU12_r"] == 2.0
    assert any("1 row(s) repeat a frame number" in r.getMessage() for r in caplog.records)


def test_intensities_are_clipped_to_the_openface_scale():
    second = load_openface_csv(DATA / "openface_small.csv")[1]
    assert second.intensities["AU12_r"] == 5.0  # 6.20 in the file
    assert second.intensities["AU06_r"] == 0.0  # -0.40 in the file


def test_active_aus_threshold_and_failed_frames():
    frames = load_openface_csv(DATA / "openface_small.csv")
    assert frames[0].active_aus() == {"AU12_r": 0.85, "AU45_r": 1.3}
    assert frames[3].active_aus() == {"AU12_r": 2.0, "AU25_r": 0.8}  # the threshold is inclusive
    assert frames[3].active_aus(min_intensity=1.0) == {"AU12_r": 2.0}
    assert not frames[2].success and frames[2].active_aus(min_intensity=0.0) == {}


def test_truncated_last_row_counts_as_untracked(caplog):
    caplog.set_level(logging.WARNING, logger="my_affectgpt")
    frames = load_openface_csv(DATA / "truncated.csv")
    assert [f.frame for f in frames] == [1, 2, 3]
    assert frames[1].intensities == {"AU12_r": 1.4, "AU25_r": 0.9}
    assert not frames[2].success and frames[2].intensities == {}
    assert any("1 row(s) hold no AU intensity" in r.getMessage() for r in caplog.records)


def test_csv_without_frame_column_numbers_rows(caplog):
    caplog.set_level(logging.WARNING, logger="my_affectgpt")
    frames = load_openface_csv(DATA / "no_frame_column.csv")
    assert [(f.frame, f.timestamp, f.success) for f in frames] == [(1, 0.0, True), (2, 0.04, True)]
    assert any("numbering frames by row" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("empty.csv", "empty"),
        ("header_only.csv", "no frames"),
        ("no_au_columns.csv", "no AUxx_r intensity columns"),
        ("bad_value.csv", "'AU12_r' holds a non-numeric value 'high' in data row 2"),
    ],
)
def test_unusable_csvs_raise_one_clear_error(name, reason):
    with pytest.raises(OpenFaceCSVError, match=reason) as info:
        load_openface_csv(DATA / name)
    assert name in str(info.value) and "OpenFace" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_csv_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.csv"):
        load_openface_csv(tmp_path / "gone.csv")


def test_openface_csv_path():
    assert openface_csv_path("/out/MER2023/s1/s1_au_analysis.json") == Path("/out/MER2023/s1/s1.csv")
    with pytest.raises(UserError, match="_au_analysis.json"):
        openface_csv_path("/out/s1/s1.json")


# --------------------------------------------------------------------------- descriptions


def test_describe_aus_orders_by_au_and_formats_intensity():
    text = describe_aus({"AU26_r": 2.08, "AU10_r": 1.06, "AU4": 0.875})
    assert text == "Brow lowerer (intensity: 0.88), Upper lip raiser (intensity: 1.06), Jaw drop (intensity: 2.08)"


def test_describe_aus_edge_cases():
    assert describe_aus({}) == ""
    assert describe_aus({"AU11_r": 1.5}) == "AU11 (intensity: 1.50)"  # outside the OpenFace table
    with pytest.raises(UserError, match="gaze_0_x"):
        describe_aus({"gaze_0_x": 0.1})


def test_fixture_peak_description_matches_upstream(upstream_fixture):
    json_path, csv_path = upstream_fixture
    frames = load_openface_csv(csv_path)
    peak = next(f for f in frames if f.frame == 222)  # upstream's overall peak frame
    assert describe_aus(peak.active_aus()) == load_au_analysis(json_path).overall_description


# --------------------------------------------------------------------------- peaks


def _frames(scores, untracked=()):
    return [
        OpenFaceFrame(
            frame=i + 1, timestamp=i / 10, confidence=0.9, success=i not in untracked,
            intensities={"AU12_r": float(s)}, presence={},
        )
        for i, s in enumerate(scores)
    ]


SCORES = [0, 0, 3, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 4, 4, 0]


def test_detect_peaks_local_maxima_by_hand():
    # mean 0.8125; the local maxima within +-2 are 2 (3), 8 (2) and 13 (4; 14 ties, the first wins)
    assert detect_peaks(_frames(SCORES), window=2, std_factor=0.0) == [2, 8, 13]
    # only the strongest two, returned in time order
    assert detect_peaks(_frames(SCORES), window=2, std_factor=0.0, max_peaks=2) == [2, 13]
    # mean + 1 std = 0.8125 + 1.467 = 2.28 drops the peak of 2
    assert detect_peaks(_frames(SCORES), window=2, std_factor=1.0) == [2, 13]


def test_detect_peaks_window_suppresses_close_maxima():
    scores = [0, 5, 0, 4, 0, 0, 0, 0]
    assert detect_peaks(_frames(scores), window=2, std_factor=0.0) == [1]
    assert detect_peaks(_frames(scores), window=1, std_factor=0.0) == [1, 3]


def test_detect_peaks_ignores_blinks_and_untracked_frames():
    # position 6 is the strongest but untracked; position 3 only blinks (AU45), which scores 0
    frames = _frames([0, 1, 0, 0, 0, 0, 9, 0], untracked=(6,))
    frames[3] = dataclasses.replace(frames[3], intensities={"AU45_r": 5.0})
    assert detect_peaks(frames, window=1, std_factor=0.0) == [1]


def test_detect_peaks_without_signal():
    assert detect_peaks(_frames([2, 2, 2, 2])) == []
    assert detect_peaks(_frames([3, 1, 3], untracked=(0, 1, 2))) == []
    assert detect_peaks([]) == []
    assert detect_peaks(_frames([0, 5, 0]), max_peaks=0) == []


def test_detect_peaks_on_fixture(upstream_fixture):
    _, csv_path = upstream_fixture
    frames = load_openface_csv(csv_path)
    # frames 177 and 222 are also upstream's peaks at 11.73 s and 14.73 s
    assert [frames[p].frame for p in detect_peaks(frames)] == [177, 216, 222]


# --------------------------------------------------------------------------- augmentation


def test_augment_upstream_fixture_uses_upstream_peak_times(upstream_fixture):
    json_path, csv_path = upstream_fixture
    analysis = augment_from_csv(load_au_analysis(json_path), csv_path)
    assert analysis.frames_source == "openface_csv"
    assert analysis.source_shape == "upstream"
    assert len(analysis.frames) == analysis.total_frames == 223
    assert math.isclose(analysis.estimated_fps(), 15.0, rel_tol=1e-3)
    # 10.20 s, 11.73 s and 14.73 s at 15 fps are OpenFace frames 154, 177 and 222
    assert analysis.peak_positions == [153, 176, 221]
    assert [f.frame for f in analysis.peak_frames] == [154, 177, 222]
    assert sum(f.is_peak for f in analysis.frames) == 3
    assert analysis.frames[221].au_description == analysis.overall_description
    assert analysis.frames[221].active_aus == {"AU25_r": 1.94, "AU26_r": 2.08}
    assert analysis.summary_descriptions == []  # the CSV has no summaries to offer


def test_augment_without_timed_upstream_peaks_detects_them(upstream_fixture):
    _, csv_path = upstream_fixture
    analysis = augment_from_csv(load_au_analysis(DATA / "upstream_neutral.json"), csv_path)
    assert [f.frame for f in analysis.peak_frames] == [177, 216, 222]


def test_augment_ignores_upstream_peaks_outside_the_csv(caplog):
    caplog.set_level(logging.WARNING, logger="my_affectgpt")
    analysis = AUAnalysis(upstream_peaks=[UpstreamPeak(99.0, "happy", "slight", "Peak at 99.00s: happy (slight)")])
    augmented = augment_from_csv(analysis, DATA / "openface_small.csv")
    # scores without AU45: 1.58, 5.90, untracked, 2.80 -> threshold 3.43 + 1.82 = 5.25 -> frame 2
    assert augmented.peak_positions == [1]
    assert [f.au_description for f in augmented.frames] == [
        "Lip corner puller (intensity: 0.85), Blink (intensity: 1.30)",
        "Inner brow raiser (intensity: 0.90), Lip corner puller (intensity: 5.00)",
        "",
        "Lip corner puller (intensity: 2.00), Lips part (intensity: 0.80)",
    ]
    assert any("Peak at 99.00s" in r.getMessage() for r in caplog.records)


def test_augment_keeps_json_per_frame_data():
    analysis = load_au_analysis(DATA / "mixed.json")
    assert augment_from_csv(analysis, DATA / "openface_small.csv") is analysis


# --------------------------------------------------------------------------- FACS tables


def test_au_table_matches_the_spec():
    assert sorted(AU_NAMES) == [
        "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
        "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU28", "AU45",
    ]
    assert AU_NAMES["AU10"] == "Upper lip raiser" and AU_NAMES["AU45"] == "Blink"


@pytest.mark.parametrize(
    "key, code", [("AU4", "AU04"), (" au12_r ", "AU12"), ("AU28_c", "AU28"), ("AU 45", "AU45"), ("gaze_0_x", None)]
)
def test_au_code(key, code):
    assert au_code(key) == code


def test_au_name():
    assert au_name("AU12_r") == "Lip corner puller"
    assert au_name("AU43") == "AU43"
    with pytest.raises(ValueError, match="not an action unit"):
        au_name("confidence")


def test_emotion_words_are_found_in_english_and_chinese():
    text = "The man looks Happy, then surprised; a fearless stare. He seems happy."
    assert find_emotion_words(text) == ["happy", "surprised"]
    assert find_emotion_words("她看起来很开心，随后有些惊讶。") == ["开心", "惊讶"]


def test_objective_descriptions_have_no_emotion_words():
    assert find_emotion_words(", ".join(AU_NAMES.values())) == []
    assert find_emotion_words("A slight smile; the relaxed brows; tense lips; 面部肌肉紧张。") == []
