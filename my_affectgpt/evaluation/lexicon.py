"""A small, deterministic emotion lexicon.

Every surface form (an English word or inflection, or a Chinese word) maps to one
``LexiconEntry``: a headword that names the emotion in open-vocabulary scoring
("happiness" -> "happy", "anxiety" -> "anxious"), the basic label it counts as in
discrete scoring ("excited" -> "happy", "fear" -> "worried"), and a polarity used to
predict valence. Words that are emotions but have no basic label ("embarrassed") keep
``basic=None``; sentiment words that are not emotions ("positive") set
``is_emotion=False`` and only feed the valence.

The basic label set follows MER2023/2024 (``worried`` is their name for the fear class);
MELD's ``joy``/``sadness``/``anger``/``fear`` and IEMOCAP's abbreviations map onto it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

BASIC_LABELS = ("happy", "sad", "angry", "surprise", "worried", "disgust", "neutral")


@dataclass(frozen=True)
class LexiconEntry:
    headword: str
    basic: Optional[str]
    polarity: int
    is_emotion: bool = True


# (basic label, polarity, headword, other surface forms). A form may appear only once.
_EMOTIONS: Tuple[Tuple[Optional[str], int, str, str], ...] = (
    ("happy", 1, "happy", "happier happiest happily happiness 开心 高兴 快乐 愉快"),
    ("happy", 1, "joyful", "joy joys joyous joyfully 喜悦"),
    ("happy", 1, "glad", "gladly gladness"),
    ("happy", 1, "cheerful", "cheer cheery cheerfully cheerfulness"),
    ("happy", 1, "delighted", "delight delightful delightedly"),
    ("happy", 1, "pleased", "pleasure"),
    ("happy", 1, "excited", "excitement exciting excitedly 兴奋 激动"),
    ("happy", 1, "elated", "elation"),
    ("happy", 1, "amused", "amusement"),
    ("happy", 1, "satisfied", "satisfaction 满意"),
    ("happy", 1, "contented", "contentment"),
    ("happy", 1, "enthusiastic", "enthusiasm"),
    ("sad", -1, "sad", "sadly sadness sadder saddest 悲伤 伤心 难过"),
    ("sad", -1, "unhappy", "unhappiness"),
    ("sad", -1, "sorrowful", "sorrow"),
    ("sad", -1, "grieving", "grief grieved"),
    ("sad", -1, "depressed", "depression depressing 沮丧"),
    ("sad", -1, "disappointed", "disappointment disappointing 失望"),
    ("sad", -1, "upset", ""),
    ("sad", -1, "heartbroken", ""),
    ("sad", -1, "gloomy", "melancholy"),
    ("sad", -1, "lonely", "loneliness 孤独"),
    ("sad", -1, "hopeless", "hopelessness"),
    ("sad", -1, "helpless", "helplessness 无奈"),
    ("angry", -1, "angry", "anger angrily angered angrier 生气 愤怒"),
    ("angry", -1, "furious", "fury furiously"),
    ("angry", -1, "enraged", "rage raging"),
    ("angry", -1, "irritated", "irritation irritable 恼火"),
    ("angry", -1, "annoyed", "annoyance annoying"),
    ("angry", -1, "frustrated", "frustration frustrating"),
    ("angry", -1, "resentful", "resentment"),
    ("angry", -1, "hostile", "hostility"),
    ("angry", -1, "indignant", "indignation"),
    ("angry", -1, "outraged", "outrage"),
    ("angry", -1, "dissatisfied", "dissatisfaction 不满"),
    ("surprise", 0, "surprised", "surprise surprising surprisingly 惊讶 吃惊"),
    ("surprise", 0, "astonished", "astonishment"),
    ("surprise", 0, "amazed", "amazement"),
    ("surprise", 0, "shocked", "shock 震惊"),
    ("surprise", 0, "startled", ""),
    ("worried", -1, "worried", "worry worries worrying worriedly 担心 担忧"),
    ("worried", -1, "fearful", "fear fears feared fearfully 害怕 恐惧"),
    ("worried", -1, "afraid", ""),
    ("worried", -1, "scared", ""),
    ("worried", -1, "frightened", "fright"),
    ("worried", -1, "terrified", "terror"),
    ("worried", -1, "anxious", "anxiety anxiously 焦虑"),
    ("worried", -1, "nervous", "nervousness nervously 紧张"),
    ("worried", -1, "panicked", "panic"),
    ("worried", -1, "concerned", ""),
    ("worried", -1, "uneasy", "unease"),
    ("disgust", -1, "disgusted", "disgust disgusting 厌恶 恶心 反感"),
    ("disgust", -1, "repulsed", "revulsion"),
    ("disgust", -1, "contemptuous", "contempt"),
    ("disgust", -1, "loathing", ""),
    ("neutral", 0, "neutral", "中性 中立"),
    ("neutral", 0, "calm", "calmness calmly 平静"),
    ("neutral", 0, "composed", "composure"),
    ("neutral", 0, "indifferent", "indifference 冷漠"),
    (None, 1, "proud", "pride 自豪"),
    (None, 1, "grateful", "gratitude 感激"),
    (None, 1, "relieved", "relief 欣慰"),
    (None, 1, "relaxed", "轻松"),
    (None, 1, "hopeful", ""),
    (None, -1, "confused", "confusion 困惑"),
    (None, -1, "embarrassed", "embarrassment 尴尬"),
    (None, -1, "guilty", "guilt 内疚"),
    (None, -1, "ashamed", "shame"),
    (None, -1, "jealous", "jealousy 嫉妒"),
    (None, -1, "bored", "boredom"),
    (None, -1, "doubtful", "skeptical 怀疑"),
    (None, -1, "awkward", ""),
    (None, 0, "shy", "shyness 害羞"),
    (None, 0, "curious", "curiosity 好奇"),
)

# Sentiment words that are not emotions: they only move the predicted valence.
_SENTIMENT_WORDS: Tuple[Tuple[int, str, str], ...] = (
    (1, "positive", "positively 积极 正面"),
    (1, "pleasant", ""),
    (1, "optimistic", "optimism 乐观"),
    (-1, "negative", "negatively 消极 负面"),
    (-1, "unpleasant", ""),
    (-1, "pessimistic", "pessimism 悲观"),
)

# Abbreviations found in gold label files only (IEMOCAP); never matched in free text.
_GOLD_ALIASES = {
    "hap": "happy",
    "exc": "happy",
    "neu": "neutral",
    "ang": "angry",
    "sur": "surprise",
    "fea": "worried",
    "dis": "disgust",
}


def _build() -> Dict[str, LexiconEntry]:
    table: Dict[str, LexiconEntry] = {}
    rows = [(basic, pol, head, forms, True) for basic, pol, head, forms in _EMOTIONS]
    rows += [(None, pol, head, forms, False) for pol, head, forms in _SENTIMENT_WORDS]
    for basic, polarity, headword, forms, is_emotion in rows:
        entry = LexiconEntry(headword, basic, polarity, is_emotion)
        for form in (headword, *forms.split()):
            if form in table:
                raise ValueError(f"lexicon form {form!r} is listed twice")
            table[form] = entry
    return table


_LEXICON = _build()
_CJK = re.compile(r"[\u3400-\u9fff]")
# Longest first, so a scan prefers the longer of two overlapping Chinese words.
CJK_FORMS: Tuple[str, ...] = tuple(
    sorted((f for f in _LEXICON if _CJK.search(f)), key=len, reverse=True)
)

_STRIP = " \t\r\n'\"`“”‘’[](){}<>.,;:!?，。；：！？、"


def clean_label(label: str) -> str:
    """Lower-case, trim quotes/brackets/punctuation and collapse inner whitespace."""
    return " ".join(str(label).lower().strip(_STRIP).split())


def lookup(word: str) -> Optional[LexiconEntry]:
    """The entry for a single surface form (after ``clean_label``), or None."""
    return _LEXICON.get(clean_label(word))


def normalize_label(label: str) -> str:
    """An open-vocabulary label in comparable form: the headword when the lexicon knows it
    ("Happiness" -> "happy", "焦虑" -> "anxious"), else the cleaned text."""
    cleaned = clean_label(label)
    entry = _LEXICON.get(cleaned)
    return entry.headword if entry is not None and entry.is_emotion else cleaned


def canonical_label(label: str) -> Optional[str]:
    """The basic label a word counts as ("joy" -> "happy", "fear" -> "worried"), or None."""
    cleaned = clean_label(label)
    if cleaned in BASIC_LABELS:
        return cleaned
    entry = _LEXICON.get(cleaned)
    if entry is not None:
        return entry.basic
    return _GOLD_ALIASES.get(cleaned)


def label_polarity(label: str) -> int:
    """+1, -1 or 0 for a word the lexicon knows; 0 for an unknown word."""
    entry = _LEXICON.get(clean_label(label))
    return entry.polarity if entry is not None else 0
