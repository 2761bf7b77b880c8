"""Emotion-wheel folders for the evaluation tests: the official one, and a tiny one in the same
format whose mappings are easy to follow by hand."""
from __future__ import annotations

from pathlib import Path

OFFICIAL_WHEEL_DIR = Path(__file__).resolve().parent / "fixtures" / "mer_unibench_emotion_wheel"

# Wheel "A" (wheel1, 3, 4, 5). Blank cells repeat the value above, so the last row is
# (Sad, Hurt, Isolated): "isolated" is listed twice and its later row (Hurt) wins at level 2.
WHEEL_A = [
    ("Joy", "Content", "Pleased"),
    (None, None, "Calm"),
    (None, "Proud", "Confident"),
    ("Sad", "Lonely", "Isolated"),
    (None, "Hurt", None),
]
# Wheel "B" (wheel2) lists no "content" and no "confident".
WHEEL_B = [
    ("Peaceful", "Calm", "Pleased"),
    ("Sad", "Lonely", "Isolated"),
]
# (wheel word, synonyms) per run: runs 1-7 alike, run 8 adds synonyms in another spelling.
SYNONYMS_RUNS_1_7 = [("Pleased", "glad, happy"), ("content", "happy"), ("isolated", "alone"), ("confident", "sure")]
SYNONYMS_RUN_8 = [("pleased ", "cheerful"), ("content", None), ("isolated", "['alone', 'lonesome']"),
                  ("confident", "sure")]
# base word -> its other forms; "lonely" is a form of "alone", so it reaches "isolated".
FORMATS = [
    ("happy", "happier,happiness"),
    ("pleased", "pleasure"),
    ("glad", None),
    ("cheerful", None),
    ("content", "contentment"),
    ("isolated", "isolation"),
    ("alone", "lonely"),
    ("lonesome", None),
    ("confident", "confidence"),
    ("sure", None),
]


def write_tiny_wheel_folder(folder: Path) -> Path:
    """Write the tiny wheel folder (format.csv, synonym.xlsx, wheel1..5.xlsx) into ``folder``.

    Level 1 / level 2 groups of the labels that map (all others map to nothing, e.g. "calm",
    "joy", "sad", "neutral": format.csv does not list them):

    =====================================  ===============  ===============
    label                                  wheels 1,3,4,5   wheel 2
    =====================================  ===============  ===============
    happy, happier, happiness              joy / content    peaceful / calm
    pleased, pleasure, glad, cheerful      joy / content    peaceful / calm
    content, contentment                   joy / content    (nothing)
    confident, confidence, sure            joy / proud      (nothing)
    isolated, isolation, alone, lonely,    sad / hurt       sad / lonely
    lonesome
    =====================================  ===============  ===============
    """
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    columns = ["level1", "level2", "level3"]
    for index in range(1, 6):
        rows = WHEEL_B if index == 2 else WHEEL_A
        pd.DataFrame(rows, columns=columns).to_excel(folder / f"wheel{index}.xlsx", index=False)
    synonym = {}
    for run in range(1, 9):
        rows = SYNONYMS_RUN_8 if run == 8 else SYNONYMS_RUNS_1_7
        synonym[f"word_run{run}"] = [word for word, _ in rows]
        synonym[f"synonym_run{run}"] = [synonyms for _, synonyms in rows]
    pd.DataFrame(synonym).to_excel(folder / "synonym.xlsx", index=False)
    pd.DataFrame(FORMATS, columns=["name", "format"]).to_csv(folder / "format.csv", index=False)
    return folder
