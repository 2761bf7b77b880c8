"""MER-UniBench's emotion-wheel scores, against hand-computed values on a tiny wheel folder in
the official format and on the official folder itself (tests/fixtures/mer_unibench_emotion_wheel)."""
import shutil

import pytest

from helpers_emotion_wheels import OFFICIAL_WHEEL_DIR, write_tiny_wheel_folder
from my_affectgpt.common.errors import UserError
from my_affectgpt.common.label_lists import split_label_list as parse_label_list
from my_affectgpt.evaluation.emotion_wheel import EmotionWheelError, OfficialEmotionWheels
from my_affectgpt.evaluation.ew_metrics import UndefinedWheelScore, ew_hit_rate, ew_overlap_scores
from my_affectgpt.evaluation.metrics import EmotionWheel, load_emotion_wheel


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return OfficialEmotionWheels.load(write_tiny_wheel_folder(tmp_path_factory.mktemp("tiny_wheel")))


@pytest.fixture(scope="module")
def official():
    return load_emotion_wheel(OFFICIAL_WHEEL_DIR)


@pytest.mark.parametrize("value, expected", [
    ("[happy, sad]", ["happy", "sad"]),
    ("['happy', 'sad']", ["happy", "sad"]),
    ('["Happy" , " sad "]', ["Happy", "sad"]),
    ("happy,sad,", ["happy", "sad"]),
    ("[]", []),
    ("", []),
    (None, []),
    (float("nan"), []),
    ("[", []),
    (["Happy ", "x"], ["Happy ", "x"]),
    ("happy; sad", ["happy; sad"]),  # only commas and quotes separate
    (" [happy]", ["[happy"]),  # "[" is removed only as the very first character
])
def test_parse_label_list_reads_lists_as_mer_unibench_does(value, expected):
    assert parse_label_list(value) == expected


@pytest.mark.parametrize("label, wheel, level, group", [
    ("happy", "wheel1", 1, "joy"),
    ("HAPPINESS ", "wheel1", 2, "content"),  # a form of happy; case and spaces do not matter
    ("happy", "wheel2", 1, "peaceful"),  # content is not on wheel2: the next sorted word, pleased
    ("happy", "wheel2", 2, "calm"),  # level-2 group of pleased on wheel2
    ("cheerful", "wheel1", 1, "joy"),  # a synonym only run 8 lists
    ("lonesome", "wheel3", 2, "hurt"),  # run 8's list-string synonyms; isolated's later row wins
    ("lonely", "wheel2", 2, "lonely"),  # "lonely" is a form of "alone", a synonym of isolated
    ("confidence", "wheel4", 2, "proud"),
    ("confidence", "wheel2", 1, None),
    ("calm", "wheel1", 1, None),  # on the wheel, but format.csv does not list it
    ("neutral", "wheel1", 1, None),
])
def test_tiny_wheel_groups(tiny, label, wheel, level, group):
    assert tiny.group(label, wheel, level) == group


def test_level2_sends_a_level1_emotion_to_its_first_level2_emotion(tmp_path):
    import pandas as pd

    folder = write_tiny_wheel_folder(tmp_path / "wheel")
    synonyms = pd.read_excel(folder / "synonym.xlsx")
    synonyms.loc[len(synonyms)] = ["Sad", "sorrow"] * 8
    synonyms.to_excel(folder / "synonym.xlsx", index=False)
    formats = pd.read_csv(folder / "format.csv")
    formats.loc[len(formats)] = ["sorrow", "sorrows"]
    formats.loc[len(formats)] = ["sad", None]
    formats.to_csv(folder / "format.csv", index=False)
    wheels = OfficialEmotionWheels.load(folder)
    assert wheels.group("sorrows", "wheel1", 1) == "sad"
    assert wheels.group("sorrows", "wheel1", 2) == "hurt"  # sorted(["lonely", "hurt"])[0]
    assert wheels.group("sad", "wheel2", 2) == "lonely"


# Open-vocabulary samples on the tiny wheel. Per wheel (A = wheels 1,3,4,5; B = wheel 2):
#   1 gold {happy, alone}  pred pleased, lonely, calm, happy -> A {joy, sad}: P=R=1; B {peaceful, sad}: P=R=1
#   2 gold neutral -> maps to nothing: left out on every wheel
#   3 gold contentment, pred empty -> A: P=R=0; B: contentment maps to nothing, left out
#   4 gold isolation, pred glad, glad, xyz -> A sad vs joy, B sad vs peaceful: P=R=0
#   5 gold {pleased, isolated}, pred cheerful, calm -> A and B: P=1, R=1/2
#   6 gold happy, pred confidence -> level 1: A joy = joy (P=R=1), B nothing predicted (0);
#     level 2: A content vs proud (0), B 0
# Level 1: A P=3/5, R=2.5/5, F=6/11; B P=2/4, R=1.5/4, F=3/7.
# Level 2: A P=2/5, R=1.5/5, F=12/35; B as at level 1.
OV_GOLD = [["Happy", "alone"], ["neutral"], ["contentment"], ["isolation"], ["pleased", "isolated"], ["happy"]]
OV_PRED = ["[pleased, Lonely, calm, happy]", "[happy]", "", "['glad', 'glad', 'xyz']", "[cheerful, calm]",
           "[confidence]"]


def test_open_vocabulary_scores_on_the_tiny_wheel(tiny):
    pred = [parse_label_list(item) for item in OV_PRED]
    level1 = ew_overlap_scores(OV_GOLD, pred, tiny, level=1)
    assert level1["precision"] == pytest.approx((4 * 3 / 5 + 2 / 4) / 5, abs=1e-12)
    assert level1["recall"] == pytest.approx((4 * 2.5 / 5 + 1.5 / 4) / 5, abs=1e-12)
    assert level1["fscore"] == pytest.approx((4 * 6 / 11 + 3 / 7) / 5, abs=1e-12)  # not the F of P and R
    level2 = ew_overlap_scores(OV_GOLD, pred, tiny, level=2)
    assert level2["precision"] == pytest.approx((4 * 2 / 5 + 2 / 4) / 5, abs=1e-12)
    assert level2["recall"] == pytest.approx((4 * 1.5 / 5 + 1.5 / 4) / 5, abs=1e-12)
    assert level2["fscore"] == pytest.approx((4 * 12 / 35 + 3 / 7) / 5, abs=1e-12)


def test_hit_rate_on_the_tiny_wheel(tiny):
    # a: Happy vs pleasure, isolation -> A 1, B 1     b: neutral -> left out
    # c: content vs nothing -> A 0, B left out        d: alone vs confidence, glad -> A 0, B 0
    # e: happy vs Confidence -> A 1, B 0
    gold = [parse_label_list(g) for g in ("Happy", "neutral", "content", "alone", "happy")]
    pred = [parse_label_list(p) for p in ("[pleasure, isolation]", "[happy]", "[]", "[confidence, glad]",
                                          "[Confidence]")]
    assert ew_hit_rate(gold, pred, tiny) == pytest.approx((4 * 2 / 4 + 1 / 3) / 5, abs=1e-12)


def test_a_wheel_without_any_overlap_has_f_zero(tiny):
    scores = ew_overlap_scores([["isolation"]], [["glad"]], tiny)
    assert scores == {"fscore": 0.0, "precision": 0.0, "recall": 0.0}


def test_scores_are_undefined_when_no_gold_label_maps(tiny):
    with pytest.raises(UndefinedWheelScore, match="no sample's gold labels map onto wheel1.*NaN"):
        ew_hit_rate([["neutral"], ["calm"]], [["happy"], ["happy"]], tiny)
    with pytest.raises(UndefinedWheelScore, match="wheel2"):  # contentment is only off wheel 2
        ew_overlap_scores([["contentment"]], [["happy"]], tiny)


# The official folder: level-1 groups per wheel 1..5 (read from its files):
#   happy    happy, happy, joyful, joy, powerful      sad      sad on all five
#   worried  scared, fearful, scared, fear, scared    fear     scared, happy, joyful, genius, joyful
#   surprise surprised, surprised, powerful, fear, (nothing)   angry   mad, angry, mad, anger, mad
#   neutral  nothing on any wheel
@pytest.mark.parametrize("label, groups", [
    ("happy", ["happy", "happy", "joyful", "joy", "powerful"]),
    ("worried", ["scared", "fearful", "scared", "fear", "scared"]),
    ("Fear", ["scared", "happy", "joyful", "genius", "joyful"]),
    ("surprise", ["surprised", "surprised", "powerful", "fear", None]),
    ("neutral", [None] * 5),
])
def test_official_wheel_level1_groups(official, label, groups):
    assert [official.group(label, f"wheel{i}", 1) for i in range(1, 6)] == groups


def test_official_hit_rate_hand_computed(official):
    # happy/happy hits on every wheel; worried/fear only on wheel 1; neutral is left out;
    # surprise/sad misses (and is left out on wheel 5); angry/"Angry, angry" hits everywhere.
    gold = [["happy"], ["worried"], ["neutral"], ["surprise"], ["angry"]]
    pred = [["happy"], ["fear"], ["happy"], ["sad"], ["Angry", "angry"]]
    expected = (3 / 4 + 2 / 4 + 2 / 4 + 2 / 4 + 2 / 3) / 5
    assert ew_hit_rate(gold, pred, official) == pytest.approx(expected, abs=1e-12)


def test_official_open_vocabulary_scores_hand_computed(official):
    # {happy, sad} vs happiness, sad, neutral: P=R=1 on every wheel and level;
    # worried vs fear: level 1 matches on wheel 1 only, level 2 nowhere; neutral is left out.
    gold = [["happy", "sad"], ["worried"], ["neutral"]]
    pred = [["happiness", "sad", "neutral"], ["fear"], ["happy"]]
    level1 = ew_overlap_scores(gold, pred, official, level=1)
    assert level1 == pytest.approx({"fscore": 0.6, "precision": 0.6, "recall": 0.6}, abs=1e-12)
    level2 = ew_overlap_scores(gold, pred, official, level=2)
    assert level2 == pytest.approx({"fscore": 0.5, "precision": 0.5, "recall": 0.5}, abs=1e-12)


def test_the_copy_in_tests_is_the_official_folder_byte_for_byte():
    """The digests PROVENANCE.md records for the official files (AffectGPT emotion_wheel/)."""
    import hashlib
    import re

    recorded = dict(re.findall(r"`([\w.]+)`\s*\|[^|]*\|\s*`?([0-9a-f]{64})", (OFFICIAL_WHEEL_DIR / "PROVENANCE.md").read_text()))
    for name in ("format.csv", "synonym.xlsx", *(f"wheel{i}.xlsx" for i in range(1, 6))):
        assert hashlib.sha256((OFFICIAL_WHEEL_DIR / name).read_bytes()).hexdigest() == recorded[name], name


def test_load_emotion_wheel_reads_a_folder_or_a_single_file(tmp_path, official):
    assert isinstance(official, OfficialEmotionWheels) and official.wheels == tuple(f"wheel{i}" for i in range(1, 6))
    single = tmp_path / "wheel.csv"
    single.write_text("word,group\nhappy,joy\n")
    assert isinstance(load_emotion_wheel(single), EmotionWheel)


def _broken_copy(tmp_path, name):
    folder = tmp_path / "wheel"
    shutil.copytree(OFFICIAL_WHEEL_DIR, folder)
    return folder, folder / name


def test_a_wheel_folder_missing_files_names_them(tmp_path):
    folder, path = _broken_copy(tmp_path, "wheel3.xlsx")
    path.unlink()
    (folder / "synonym.xlsx").unlink()
    with pytest.raises(EmotionWheelError, match="lacks synonym.xlsx, wheel3.xlsx; an official wheel folder holds"):
        OfficialEmotionWheels.load(folder)
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        OfficialEmotionWheels.load(tmp_path / "nowhere")


def test_malformed_wheel_files_are_one_clear_error(tmp_path):
    import pandas as pd

    folder, wheel = _broken_copy(tmp_path, "wheel2.xlsx")
    wheel.write_bytes(b"not a spreadsheet")
    with pytest.raises(EmotionWheelError, match="wheel2.xlsx cannot be read") as error:
        OfficialEmotionWheels.load(folder)
    assert isinstance(error.value, UserError)

    shutil.copy(OFFICIAL_WHEEL_DIR / "wheel2.xlsx", wheel)
    formats = folder / "format.csv"
    formats.write_text("word,forms\nhappy,happier\n")
    with pytest.raises(EmotionWheelError, match="format.csv has the columns word, forms; it lacks name, format"):
        OfficialEmotionWheels.load(folder)
    formats.write_text("name,format\nhappy,happier\nzzz,zzzs\n")
    with pytest.raises(EmotionWheelError, match="row 3 names the base word 'zzz', which synonym.xlsx does not list"):
        OfficialEmotionWheels.load(folder)

    shutil.copy(OFFICIAL_WHEEL_DIR / "format.csv", formats)
    synonyms = pd.read_excel(folder / "synonym.xlsx")
    synonyms.loc[3, "word_run5"] = "Zorgful"
    synonyms.to_excel(folder / "synonym.xlsx", index=False)
    with pytest.raises(EmotionWheelError, match="word_run5, row 5 is 'Zorgful', which no wheel"):
        OfficialEmotionWheels.load(folder)
