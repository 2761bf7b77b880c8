import json

import pytest

from my_affectgpt.evaluation.metrics import (
    EmotionWheel,
    EmotionWheelError,
    discrete_metrics,
    first_candidate,
    hit_rate,
    load_emotion_wheel,
    openset_metrics,
    sentiment_metrics,
)


def test_first_candidate_picks_the_first_label_in_the_candidate_set():
    assert first_candidate(["excited", "sad", "happy"], {"happy", "sad"}) == "sad"
    assert first_candidate(["excited"], {"happy", "sad"}) is None
    assert first_candidate([], {"happy"}) is None


def test_discrete_metrics_match_hand_computed_values():
    gold = ["happy", "happy", "happy", "sad", "angry"]
    pred = ["happy", "happy", "sad", "sad", None]
    scores = discrete_metrics(pred, gold)
    # happy: P=1, R=2/3, F1=0.8 (support 3); sad: P=1/2, R=1, F1=2/3 (1); angry: F1=0 (1)
    assert scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["weighted_f1"] == pytest.approx((3 * 0.8 + 2 / 3 + 0) / 5)
    assert scores["unmatched_rate"] == pytest.approx(1 / 5)


def test_discrete_metrics_all_unmatched_is_zero():
    scores = discrete_metrics([None, None], ["happy", "sad"])
    assert scores == {"accuracy": 0.0, "weighted_f1": 0.0, "unmatched_rate": 1.0}


def test_sentiment_metrics_use_non_zero_gold_and_count_zero_prediction_as_not_positive():
    gold = [2.0, -1.0, 0.0, 0.5, -3.0]
    pred = [0.5, 0.0, 1.0, -0.2, -1.0]
    scores = sentiment_metrics(pred, gold)
    # kept: gold+ [T, F, T, F], pred+ [T, F, F, F]
    # positive: P=1, R=1/2, F1=2/3; negative: P=2/3, R=1, F1=0.8; supports 2 and 2
    assert scores["n_nonzero"] == 4
    assert scores["accuracy"] == pytest.approx(3 / 4)
    assert scores["weighted_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_sentiment_metrics_need_a_non_zero_gold_value():
    with pytest.raises(ValueError, match="non-zero"):
        sentiment_metrics([1.0], [0.0])


def test_openset_metrics_average_per_sample_then_take_the_harmonic_mean():
    pred = [{"a", "b"}, {"c"}, set()]
    gold = [{"a"}, {"c", "d", "e", "f"}, {"e"}]
    scores = openset_metrics(pred, gold)
    # precision: 1/2, 1, 0 -> 1/2; recall: 1, 1/4, 0 -> 5/12; F = 2PR/(P+R) = 5/11
    assert scores["precision"] == pytest.approx(1 / 2)
    assert scores["recall"] == pytest.approx(5 / 12)
    assert scores["fscore"] == pytest.approx(5 / 11)
    assert hit_rate(pred, gold) == pytest.approx(2 / 3)


def test_openset_metrics_reject_empty_gold_and_length_mismatch():
    with pytest.raises(ValueError, match="empty"):
        openset_metrics([{"a"}], [set()])
    with pytest.raises(ValueError, match="2 predictions for 1"):
        openset_metrics([{"a"}, {"b"}], [{"a"}])


@pytest.fixture
def wheel_csv(tmp_path):
    path = tmp_path / "wheel.csv"
    path.write_text("word,group\nhappiness,joy\nexcited,joy\ncheerful,joy\nsad,sadness\nlonely,sadness\n")
    return path


def test_wheel_grouping_changes_set_comparison_and_hit_rate(wheel_csv):
    wheel = load_emotion_wheel(wheel_csv)
    assert wheel.group("Excited") == "joy"
    assert wheel.group("happy") == "joy"  # reached through the lexicon headword of "happiness"
    assert wheel.group("joy") == "joy"  # a group name maps to itself
    assert wheel.group("bewildered") == "bewildered"  # unlisted words are their own group

    pred, gold = [{"excited", "lonely"}], [{"cheerful", "angry"}]
    assert hit_rate(pred, gold) == 0.0
    grouped_pred = [wheel.group_set(p) for p in pred]
    grouped_gold = [wheel.group_set(g) for g in gold]
    assert grouped_pred == [{"joy", "sadness"}] and grouped_gold == [{"joy", "angry"}]
    assert hit_rate(grouped_pred, grouped_gold) == 1.0
    scores = openset_metrics(grouped_pred, grouped_gold)
    assert scores["precision"] == pytest.approx(0.5) and scores["recall"] == pytest.approx(0.5)


def test_json_wheel_matches_csv_wheel(tmp_path, wheel_csv):
    path = tmp_path / "wheel.json"
    path.write_text(json.dumps({"joy": ["happiness", "excited", "cheerful"], "sadness": ["sad", "lonely"]}))
    csv_wheel, json_wheel = load_emotion_wheel(wheel_csv), load_emotion_wheel(path)
    words = ["happy", "excited", "cheerful", "sad", "lonely", "angry"]
    assert [json_wheel.group(w) for w in words] == [csv_wheel.group(w) for w in words]


def test_identity_wheel_keeps_labels():
    assert EmotionWheel({}).group_set(["Happy", "sad"]) == {"happy", "sad"}


def test_wheel_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        load_emotion_wheel(tmp_path / "nowhere.csv")
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("emotion,cluster\nhappy,joy\n")
    with pytest.raises(EmotionWheelError, match="bad.csv.*'word,group'"):
        load_emotion_wheel(bad_header)
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps({"joy": ["happy"], "calm": ["happy"]}))
    with pytest.raises(EmotionWheelError, match="'happy' is in two groups"):
        load_emotion_wheel(twice)
    not_json = tmp_path / "broken.json"
    not_json.write_text("{joy: [")
    with pytest.raises(EmotionWheelError, match="not valid JSON"):
        load_emotion_wheel(not_json)
    empty = tmp_path / "empty.csv"
    empty.write_text("word,group\n")
    with pytest.raises(EmotionWheelError, match="lists no words"):
        load_emotion_wheel(empty)
