"""Facial Action Coding System vocabulary shared by the AU data layer and the AU Agent.

Two tables live here:

* ``AU_NAMES``: the OpenFace 2.x action units and the plain-English names
  MER-Factory uses in its descriptions ("Upper lip raiser (intensity: 1.06)").
* An emotion-word lexicon. AU descriptions must describe muscle movement only; the AU
  Agent's output is checked against this lexicon and violations reported.
  Words that also describe facial mechanics or media ("smile", "relaxed", "content",
  "tense"/"紧张") are deliberately left out so objective descriptions are not flagged.
"""

from __future__ import annotations

import re

AU_NAMES: dict[str, str] = {
    "AU01": "Inner brow raiser",
    "AU02": "Outer brow raiser",
    "AU04": "Brow lowerer",
    "AU05": "Upper lid raiser",
    "AU06": "Cheek raiser",
    "AU07": "Lid tightener",
    "AU09": "Nose wrinkler",
    "AU10": "Upper lip raiser",
    "AU12": "Lip corner puller",
    "AU14": "Dimpler",
    "AU15": "Lip corner depressor",
    "AU17": "Chin raiser",
    "AU20": "Lip stretcher",
    "AU23": "Lip tightener",
    "AU25": "Lips part",
    "AU26": "Jaw drop",
    "AU28": "Lip suck",
    "AU45": "Blink",
}

# OpenFace reports AU28 as presence (``AU28_c``) only, never as an intensity.
PRESENCE_ONLY_AUS = frozenset({"AU28"})

_AU_KEY = re.compile(r"^\s*AU\s*0*(\d{1,2})(?:_[rc])?\s*$", re.IGNORECASE)


def au_code(key: str) -> str | None:
    """Normalise an AU key ("AU10_r", "au10", "AU 4_c") to its code ("AU10", "AU04").

    Returns None when ``key`` is not an AU key.
    """
    match = _AU_KEY.match(str(key))
    if match is None:
        return None
    return f"AU{int(match.group(1)):02d}"


def au_name(key: str) -> str:
    """The FACS name for an AU key; an AU outside the table is named by its code."""
    code = au_code(key)
    if code is None:
        raise ValueError(f"{key!r} is not an action unit key (expected e.g. 'AU12_r' or 'AU12')")
    return AU_NAMES.get(code, code)


EMOTION_WORDS_EN = frozenset(
    {
        # the basic emotions and their inflections
        "happy", "happier", "happiest", "happily", "happiness",
        "sad", "sadder", "saddest", "sadly", "sadness",
        "anger", "angry", "angrier", "angrily",
        "fear", "fears", "feared", "fearful", "fearfully",
        "surprise", "surprised", "surprising", "surprisingly",
        "disgust", "disgusted", "disgusting",
        "contempt", "contemptuous",
        "neutral",
        # common synonyms
        "joy", "joyful", "joyous", "glad", "cheerful", "delighted", "pleased", "elated",
        "excited", "excitement", "amused", "amusement",
        "unhappy", "sorrow", "sorrowful", "grief", "grieving", "depressed", "gloomy",
        "miserable", "upset", "disappointed", "disappointment",
        "furious", "fury", "rage", "enraged", "irritated", "annoyed", "annoyance",
        "frustrated", "frustration", "hostile",
        "afraid", "scared", "frightened", "terrified", "anxious", "anxiety", "worried",
        "worry", "nervous", "panic", "panicked",
        "astonished", "astonishment", "amazed", "amazement", "shocked", "startled",
        "revolted", "repulsed", "disdain", "scornful",
        "calm", "contented",
    }
)

EMOTION_WORDS_ZH = frozenset(
    {
        "高兴", "快乐", "开心", "喜悦", "愉快",
        "悲伤", "难过", "伤心", "沮丧", "失望",
        "愤怒", "生气", "恼怒",
        "恐惧", "害怕", "焦虑", "担心",
        "惊讶", "吃惊", "震惊",
        "厌恶", "恶心", "反感",
        "轻蔑", "鄙视",
        "中性", "平静",
    }
)

_EN_PATTERN = re.compile(
    r"\b(" + "|".join(sorted(EMOTION_WORDS_EN, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
_ZH_PATTERN = re.compile("|".join(sorted(EMOTION_WORDS_ZH, key=len, reverse=True)))


def find_emotion_words(text: str) -> list[str]:
    """Emotion words in ``text``, lower-cased, unique, in order of first appearance.

    English words match whole words only (so "fearless" or "contentious" do not match);
    Chinese words match as substrings, Chinese having no word boundaries.
    """
    hits = [(m.start(), m.group(0).lower()) for m in _EN_PATTERN.finditer(text)]
    hits += [(m.start(), m.group(0)) for m in _ZH_PATTERN.finditer(text)]
    seen: dict[str, None] = {}
    for _, word in sorted(hits):
        seen.setdefault(word, None)
    return list(seen)
