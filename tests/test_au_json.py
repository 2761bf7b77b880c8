"""AU analysis JSON: locating files and reading every shape."""

import json
import logging
import math
from pathlib import Path

import pytest

from my_affectgpt.processors.au_json import (
    AUJsonError,
    AUJsonLocator,
    AUJsonNotFoundError,
    assistant_text,
    au_json_path,
    load_au_analysis,
    parse_upstream_peak,
)
from my_affectgpt.common.sample_names import InvalidSampleNameError, check_sample_name

DATA = Path(__file__).parent / "data" / "au"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mer_factory_upstream"


def _write_sample(base: Path, name: str) -> Path:
    path = base / name / f"{name}_au_analysis.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"source_path": f"{name}.mp4"}))
    return path


# --------------------------------------------------------------------------- paths


def test_au_json_path_nested_layout():
    assert au_json_path("/out", "MER2023", "s1") == Path("/out/MER2023/s1/s1_au_analysis.json")


def test_au_json_path_does_not_double_the_dataset_folder():
    assert au_json_path("/out/MER2023", "MER2023", "s1") == Path("/out/MER2023/s1/s1_au_analysis.json")
    assert au_json_path("/out/MER2023/", "MER2023", "s1") == Path("/out/MER2023/s1/s1_au_analysis.json")


def test_au_json_path_without_dataset_folder():
    assert au_json_path("/out", None, "s1") == Path("/out/s1/s1_au_analysis.json")
    assert au_json_path("/out", "", "s1") == Path("/out/s1/s1_au_analysis.json")


@pytest.mark.parametrize("name", ["a/b", "../etc", "..", "x..y", "", "  ", "a\\b", "nul\x00"])
def test_bad_sample_names_are_rejected(name):
    with pytest.raises(InvalidSampleNameError, match="sample name"):
        check_sample_name(name)
    with pytest.raises(InvalidSampleNameError):
        au_json_path("/out", "MER2023", name)


def test_good_sample_names_pass():
    assert check_sample_name("samplenew3_00043253") == "samplenew3_00043253"
    assert check_sample_name("dia1_utt0.v2") == "dia1_utt0.v2"


@pytest.mark.parametrize("folder", ["/abs/MER2023", "../MER2023", "a/../b"])
def test_bad_dataset_folders_are_rejected(folder):
    with pytest.raises(ValueError, match="dataset folder"):
        AUJsonLocator("/out", folder)


def test_locator_nested_layout(tmp_path):
    expected = _write_sample(tmp_path / "MER2023", "s1")
    locator = AUJsonLocator(tmp_path, "MER2023")
    assert locator.find("s1") == expected
    assert locator.base == tmp_path / "MER2023"
    assert "nested" in locator.layout


def test_locator_root_already_ends_with_dataset_folder(tmp_path):
    root = tmp_path / "MER2023"
    expected = _write_sample(root, "s1")
    locator = AUJsonLocator(root, "MER2023")
    assert locator.find("s1") == expected
    assert "MER2023/MER2023" not in str(locator.path("s1"))
    assert "already ends with" in locator.layout


def test_locator_root_holds_sample_folders_directly(tmp_path):
    root = tmp_path / "au_output_for_mer2024"
    (root / "not_a_sample").mkdir(parents=True)
    expected = _write_sample(root, "s7")
    locator = AUJsonLocator(root, "MER2024")
    assert locator.find("s7") == expected
    assert "directly" in locator.layout


def test_locator_defaults_to_nested_when_nothing_exists_yet(tmp_path):
    locator = AUJsonLocator(tmp_path / "not_yet", "MER2023")
    assert locator.path("s1") == tmp_path / "not_yet" / "MER2023" / "s1" / "s1_au_analysis.json"


def test_locator_missing_file_names_the_path(tmp_path):
    _write_sample(tmp_path / "MER2023", "s1")
    locator = AUJsonLocator(tmp_path, "MER2023")
    with pytest.raises(AUJsonNotFoundError, match="s2_au_analysis.json") as info:
        locator.find("s2")
    assert isinstance(info.value, FileNotFoundError)


def test_locator_rejects_bad_names(tmp_path):
    with pytest.raises(InvalidSampleNameError):
        AUJsonLocator(tmp_path, "MER2023").path("../secret")


def test_locator_logs_its_layout_once(tmp_path, caplog):
    _write_sample(tmp_path / "MER2023", "s1")
    _write_sample(tmp_path / "MER2023", "s2")
    caplog.set_level(logging.INFO, logger="my_affectgpt")
    first, second = AUJsonLocator(tmp_path, "MER2023"), AUJsonLocator(tmp_path, "MER2023")
    for locator in (first, second):
        locator.find("s1")
        locator.find("s2")
    layout_lines = [r for r in caplog.records if r.name == "my_affectgpt" and "AU JSONs for" in r.getMessage()]
    assert len(layout_lines) == 1
    assert "MER2023" in layout_lines[0].getMessage()


# --------------------------------------------------------------------------- extended shape


@pytest.fixture(scope="module")
def extended():
    return load_au_analysis(DATA / "extended_full.json")


def test_extended_shape_and_frames(extended):
    assert extended.source_shape == "extended"
    assert extended.frames_source == "json"
    assert [f.frame for f in extended.frames] == [1, 2, 3, 4, 5]
    assert extended.total_frames == 5
    assert extended.frames[0].au_description == "Upper lip raiser (intensity: 1.06)"
    assert extended.frames[0].active_aus == {"AU10_r": 1.06}


def test_extended_nan_timestamps_become_none(extended):
    # frame 2 holds the JSON NaN literal, frame 3 the string "NaN", frame 5 "0.267"
    assert [f.timestamp for f in extended.frames] == [0.0, None, None, 0.2, 0.267]


def test_extended_empty_missing_and_nan_active_aus(extended):
    assert extended.frames[1].active_aus == {}
    assert extended.frames[3].active_aus == {}
    assert extended.frames[3].au_description == ""
    assert extended.frames[2].active_aus == {"AU06_r": 0.9, "AU12_r": 1.14}  # "1.14" string parsed
    assert extended.frames[4].active_aus == {"AU25_r": 1.5}  # AU26_r NaN dropped


def test_extended_peaks_string_and_out_of_range(extended):
    # "2" -> 2, 4 kept; 7 and -1 outside [0, 5) and "x" are ignored and counted
    assert extended.peak_positions == [2, 4]
    assert [f.frame for f in extended.peak_frames] == [3, 5]
    assert [f.is_peak for f in extended.frames] == [False, False, True, False, True]
    assert any("2 peak_index value(s) outside" in w and "[7, -1]" in w for w in extended.warnings)
    assert any("without an integer peak_index" in w and "'x'" in w for w in extended.warnings)


def test_extended_summaries_sorted_numerically_with_chinese(extended):
    # keys "5", "1", "3", "10": numeric order, not string order ("10" < "3")
    assert [frame for frame, _ in extended.summary_descriptions] == [1, 3, 5, 10]
    assert extended.summary_texts == ["嘴唇微微张开。", "脸颊抬起。", "Lips part widely.", "The brows lower."]
    assert extended.summary_source == "summary_description"


def test_extended_per_frame_transcript_keeps_assistant_part(extended):
    assert extended.frames[0].fine_grained_description == "The upper lip lifts slightly."


def test_extended_problems_are_logged_as_one_counted_line(caplog):
    caplog.set_level(logging.WARNING, logger="my_affectgpt")
    analysis = load_au_analysis(DATA / "extended_full.json")
    lines = [r.getMessage() for r in caplog.records if r.name == "my_affectgpt"]
    assert len(lines) == 1
    assert "extended_full.json" in lines[0]
    assert f"{len(analysis.warnings)} problem(s)" in lines[0]
    assert len(analysis.warnings) == 3


def test_fine_grained_descriptions_fallback():
    analysis = load_au_analysis(DATA / "extended_fine_grained_only.json")
    assert analysis.source_shape == "extended"
    assert analysis.summary_source == "fine_grained_descriptions"
    assert analysis.summary_descriptions == [
        (4, "The lips part."),
        (8, "Already clean: the eyelids tighten."),
        (12, "The brows draw together and down."),
    ]
    assert analysis.frames == [] and analysis.peak_positions == [] and analysis.total_frames is None
    # "9" is blank and "15" has an empty assistant turn
    assert any("2 empty fine_grained_descriptions text(s) at frame(s) [9, 15]" in w for w in analysis.warnings)


def test_per_frame_fine_grained_fallback_and_duplicate_peaks():
    analysis = load_au_analysis(DATA / "extended_per_frame_only.json")
    # summary_description is present but empty -> per-frame transcripts, sorted by frame
    assert analysis.summary_source == "fine_grained_description"
    assert analysis.summary_descriptions == [(1, "眉毛轻轻上扬。"), (3, "The eyes close briefly.")]
    # the list order is kept (peak_index refers to it), even though frames are unsorted
    assert [f.frame for f in analysis.frames] == [3, 1]
    assert analysis.peak_positions == [0]
    assert analysis.frames[1].active_aus == {}  # null
    assert analysis.total_frames == 2


def test_unicode_escaped_and_raw_chinese_read_the_same(tmp_path):
    raw = tmp_path / "raw.json"
    escaped = tmp_path / "escaped.json"
    content = {"summary_description": {"1": "眉头紧锁"}}
    raw.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    escaped.write_text(json.dumps(content, ensure_ascii=True), encoding="ascii")
    assert "\\u" in escaped.read_text()
    assert load_au_analysis(raw).summary_texts == load_au_analysis(escaped).summary_texts == ["眉头紧锁"]


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"summary_description": {"2": "x"}}).encode())
    assert load_au_analysis(path).summary_descriptions == [(2, "x")]


def test_wrongly_typed_optional_fields_degrade_with_warnings(tmp_path):
    path = tmp_path / "odd.json"
    path.write_text(
        json.dumps(
            {
                "per_frame_au_descriptions": [{"frame": 1}, "garbage", {"frame": "abc", "active_aus": [1]}],
                "au_info": {"total_frames": "three", "peak_frames": [{"peak_index": 1.0}, 2]},
                "summary_description": ["not", "a", "dict"],
            }
        )
    )
    analysis = load_au_analysis(path)
    # positions are preserved: the bad entry stays as frame 2, the bad frame number becomes 3
    assert [f.frame for f in analysis.frames] == [1, 2, 3]
    assert analysis.peak_positions == [1]  # 1.0 is integral; the bare 2 is not a peak object
    assert analysis.total_frames == 3  # "three" ignored -> number of per-frame entries
    assert analysis.summary_descriptions == []
    assert len(analysis.warnings) == 6


def test_empty_per_frame_list_means_all_peaks_out_of_range(tmp_path):
    path = tmp_path / "nopf.json"
    path.write_text(json.dumps({"au_info": {"total_frames": 40, "peak_frames": [{"peak_index": 3}]}}))
    analysis = load_au_analysis(path)
    assert analysis.peak_positions == []
    assert analysis.total_frames == 40
    assert any("outside" in w for w in analysis.warnings)


def test_estimated_fps_uses_the_whole_span(tmp_path):
    frames = [{"frame": i, "timestamp": round((i - 1) / 15, 3)} for i in range(1, 31)]
    frames[5]["timestamp"] = float("nan")
    path = tmp_path / "fps.json"
    path.write_text(json.dumps({"per_frame_au_descriptions": frames}))
    assert math.isclose(load_au_analysis(path).estimated_fps(), 15.0, rel_tol=1e-3)


# --------------------------------------------------------------------------- upstream shapes


def test_upstream_fixture():
    path = FIXTURES / "default_au_analysis.json"
    analysis = load_au_analysis(path)
    assert analysis.source_shape == "upstream"
    assert analysis.frames == [] and analysis.peak_positions == [] and analysis.summary_descriptions == []
    assert [(p.time_s, p.emotion, p.intensity) for p in analysis.upstream_peaks] == [
        (10.2, "disgust", "slight"),
        (11.73, "surprise", "slight"),
        (14.73, "surprise", "slight"),
    ]
    assert analysis.overall_description == "Lips part (intensity: 1.94), Jaw drop (intensity: 2.08)"
    assert analysis.source_path == "/content/OpenFace/samples/default.wmv"
    assert analysis.warnings == []


def test_upstream_neutral_and_unknown_keys():
    analysis = load_au_analysis(DATA / "upstream_neutral.json")
    assert analysis.source_shape == "upstream"
    assert [(p.time_s, p.emotion, p.intensity) for p in analysis.upstream_peaks] == [(None, "neutral", None)]
    assert analysis.overall_description is None  # "" is no description
    assert analysis.warnings == []


def test_older_upstream_shape():
    analysis = load_au_analysis(DATA / "upstream_old.json")
    assert analysis.source_shape == "upstream_old"
    assert analysis.video_id == "sample_00000001"
    assert analysis.overall_description == "Lip corner puller (intensity: 2.10)"
    assert analysis.facial_summary == "The corners of the mouth pull up and the cheeks rise."
    assert [(p.time_s, p.emotion) for p in analysis.upstream_peaks] == [(1.5, "happy")]
    assert any("unrecognised chronological_emotion_peaks" in w for w in analysis.warnings)


def test_mixed_shape():
    analysis = load_au_analysis(DATA / "mixed.json")
    assert analysis.source_shape == "mixed"
    assert analysis.peak_positions == [1]
    assert analysis.upstream_peaks[0].emotion == "surprise"


def test_json_with_no_known_keys_is_empty_with_a_warning():
    analysis = load_au_analysis(DATA / "unknown_keys_only.json")
    assert analysis.source_shape == "empty"
    assert analysis.warnings and "something_else" in analysis.warnings[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Peak at 10.20s: disgust (slight)", (10.2, "disgust", "slight")),
        ("peak at 3s: happy", (3.0, "happy", None)),
        ("Peak at NaNs: fear (strong)", (None, "fear", "strong")),
        ("neutral", (None, "neutral", None)),
        ("sad (moderate)", (None, "sad", "moderate")),
    ],
)
def test_parse_upstream_peak(text, expected):
    peak = parse_upstream_peak(text)
    assert (peak.time_s, peak.emotion, peak.intensity) == expected
    assert peak.raw == text


@pytest.mark.parametrize("text", ["", "   ", "Peak at soon", "(slight)"])
def test_parse_upstream_peak_rejects_garbage(text):
    assert parse_upstream_peak(text) is None


def test_assistant_text():
    assert assistant_text("system\nS\nuser\nassistant here\nassistant\nThe brows lower.\n") == "The brows lower."
    assert assistant_text("<|im_start|>assistant\nLips part.<|im_end|>") == "Lips part."
    assert assistant_text("  Already clean.  ") == "Already clean."
    assert assistant_text("system\nS\nuser\nU\nassistant") == ""  # the answer was never written


# --------------------------------------------------------------------------- unreadable files


@pytest.mark.parametrize(
    "name, reason",
    [
        ("truncated.json", "not valid JSON, it ends early.*truncated by a killed writer"),
        ("empty.json", "empty"),
        ("not_json.json", r"not a MER-Factory AU JSON \(it starts with '<html><body>502"),
        ("top_level_list.json", "top level is a JSON list"),
    ],
)
def test_unreadable_files_raise_one_clear_error(name, reason):
    with pytest.raises(AUJsonError, match=reason) as info:
        load_au_analysis(DATA / name)
    message = str(info.value)
    assert name in message
    assert "MER-Factory" in message  # says how to fix it
    assert isinstance(info.value, ValueError)


def test_non_utf8_file_is_an_error(tmp_path):
    path = tmp_path / "gbk.json"
    content = '{"summary_description": {"1": "愤怒"}}'.encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")
    path.write_bytes(content)
    with pytest.raises(AUJsonError, match=r"gbk.json: not UTF-8 text \(byte 0x[0-9a-f]{2} at offset 31\); MER-Factory "
                                          "writes UTF-8: re-save the file as UTF-8") as info:
        load_au_analysis(path)
    assert "truncated" not in str(info.value)


@pytest.mark.parametrize(
    "content, looks_like",
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "an MP4/MOV video"),
        (b"RIFF\x10\x00\x00\x00AVI LIST", "an AVI video or WAV audio file"),
        (b"PK\x03\x04\x14\x00\x00\x00", "a zip archive"),
        (b'{"summary_description": \x00\x00}', "a binary file: it holds NUL bytes"),
    ],
)
def test_a_file_of_another_format_is_not_called_truncated(tmp_path, content, looks_like):
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    with pytest.raises(AUJsonError, match="clip.mp4: not a MER-Factory AU JSON") as info:
        load_au_analysis(path)
    message = str(info.value)
    assert f"it looks like {looks_like}" in message and "--au_json" in message
    assert "truncated" not in message


def test_a_file_cut_inside_a_character_is_truncated(tmp_path):
    path = tmp_path / "cut_au_analysis.json"
    path.write_bytes('{"summary_description": {"1": "愤'.encode("utf-8")[:-1])
    with pytest.raises(AUJsonError, match="cut_au_analysis.json: the file ends inside a character.*killed writer"):
        load_au_analysis(path)


def test_invalid_json_in_the_middle_is_not_called_truncated(tmp_path):
    path = tmp_path / "bad_au_analysis.json"
    path.write_text('{"summary_description": {"1": "x",, "2": "y"}}', encoding="utf-8")
    with pytest.raises(AUJsonError, match=r"bad_au_analysis.json: not valid JSON \(.*column 35.*\); fix that spot") as info:
        load_au_analysis(path)
    assert "truncated" not in str(info.value)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_au_analysis(tmp_path / "nope.json")
