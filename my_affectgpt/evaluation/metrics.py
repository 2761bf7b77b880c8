"""Scores for the three kinds of MER-UniBench datasets, plus emotion-wheel grouping.

* discrete (MER2023/2024, MELD, IEMOCAP): accuracy and weighted F1 of one predicted label
  per sample against the gold label; a sample without a prediction counts as wrong.
* sentiment (CMU-MOSI/MOSEI, SIMS, SIMSv2): binary (positive vs. not) accuracy and
  weighted F1 on the samples whose gold valence is non-zero. As in MER-UniBench, a
  prediction of 0 (no polar word found) counts as "not positive".
* open-vocabulary (OV-MERD(+), MER2025-OV): set-level precision and recall averaged over
  samples, F = their harmonic mean.
* HIT rate: fraction of samples where any predicted label's group is a gold label's group.

An ``EmotionWheel`` maps words to groups (a user's single grouping file) before sets are
compared; a word it does not list is its own group. MER-UniBench's own scores, through its
official wheel folder, are in ``ew_metrics``; ``load_emotion_wheel`` reads either.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Sequence, Set, Union

from my_affectgpt.common.errors import UserFileNotFoundError
from my_affectgpt.evaluation.emotion_wheel import EmotionWheelError, OfficialEmotionWheels
from my_affectgpt.evaluation.lexicon import clean_label, normalize_label

NO_LABEL = "<no label>"  # stands for a sample whose answer held no candidate label


def first_candidate(labels: Sequence[str], candidates: Iterable[str]) -> Optional[str]:
    """The first of ``labels`` that is among ``candidates``, or None."""
    allowed = set(candidates)
    return next((label for label in labels if label in allowed), None)


def discrete_metrics(predicted: Sequence[Optional[str]], gold: Sequence[str]) -> Dict[str, float]:
    """Accuracy, weighted F1 (over the gold classes) and the share of samples without a
    prediction (``None``), which count as wrong."""
    from sklearn.metrics import accuracy_score, f1_score

    _check_lengths(predicted, gold)
    filled = [NO_LABEL if p is None else p for p in predicted]
    return {
        "accuracy": float(accuracy_score(gold, filled)),
        "weighted_f1": float(
            f1_score(gold, filled, labels=sorted(set(gold)), average="weighted", zero_division=0)
        ),
        "unmatched_rate": sum(p is None for p in predicted) / len(predicted),
    }


def sentiment_metrics(predicted: Sequence[float], gold: Sequence[float]) -> Dict[str, float]:
    """Binary accuracy and weighted F1 of ``valence > 0`` on samples with non-zero gold."""
    from sklearn.metrics import accuracy_score, f1_score

    _check_lengths(predicted, gold)
    pairs = [(p > 0, g > 0) for p, g in zip(predicted, gold) if g != 0]
    if not pairs:
        raise ValueError("every gold valence is 0: sentiment scores need samples with non-zero valence")
    pred_pos, gold_pos = zip(*pairs)
    return {
        "accuracy": float(accuracy_score(gold_pos, pred_pos)),
        "weighted_f1": float(f1_score(gold_pos, pred_pos, average="weighted", zero_division=0)),
        "n_nonzero": float(len(pairs)),
    }


def openset_metrics(predicted: Sequence[Set[str]], gold: Sequence[Set[str]]) -> Dict[str, float]:
    """Sample-averaged set precision |P∩G|/|P| (0 for an empty P) and recall |P∩G|/|G|;
    ``fscore`` is the harmonic mean of the two averages."""
    _check_lengths(predicted, gold)
    if any(not g for g in gold):
        raise ValueError("a gold label set is empty: every sample needs at least one gold label")
    precision = sum(len(p & g) / len(p) if p else 0.0 for p, g in zip(predicted, gold)) / len(gold)
    recall = sum(len(p & g) / len(g) for p, g in zip(predicted, gold)) / len(gold)
    fscore = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "fscore": fscore}


def hit_rate(predicted: Sequence[Set[str]], gold: Sequence[Set[str]]) -> float:
    """Fraction of samples whose predicted groups share at least one gold group."""
    _check_lengths(predicted, gold)
    return sum(bool(p & g) for p, g in zip(predicted, gold)) / len(gold)


def _check_lengths(predicted: Sequence, gold: Sequence) -> None:
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold values")
    if not gold:
        raise ValueError("no samples to score")


class EmotionWheel:
    """Maps labels to groups; a label the wheel does not list is its own group.

    Words are compared after ``clean_label``; each listed word is also reachable through its
    lexicon headword ("happiness" listed -> "happy" maps too) unless the wheel lists that
    headword itself. A group name maps to itself unless the wheel lists it elsewhere.
    """

    def __init__(self, word_to_group: Mapping[str, str], source: str = "emotion wheel"):
        self.source = source
        mapping: Dict[str, str] = {}
        for word, group in word_to_group.items():
            mapping[clean_label(word)] = str(group).strip()
        for word, group in list(mapping.items()):
            mapping.setdefault(normalize_label(word), group)
            mapping.setdefault(clean_label(group), group)
        self._mapping = mapping

    def group(self, label: str) -> str:
        cleaned = clean_label(label)
        return self._mapping.get(cleaned) or self._mapping.get(normalize_label(cleaned)) or cleaned

    def group_set(self, labels: Iterable[str]) -> Set[str]:
        return {self.group(label) for label in labels}


def load_emotion_wheel(path: str | Path) -> Union[EmotionWheel, OfficialEmotionWheels]:
    """The official MER-UniBench wheel folder (``format.csv``, ``synonym.xlsx``,
    ``wheel1..5.xlsx``) when ``path`` is a folder; else one grouping file, a CSV with header
    ``word,group`` or a JSON ``{group: [words]}``."""
    path = Path(path)
    if path.is_dir():
        return OfficialEmotionWheels.load(path)
    if not path.is_file():
        raise UserFileNotFoundError(
            f"emotion wheel {path} does not exist; check --emotion-wheel (the official wheel folder, "
            "or a word,group CSV / {group: [words]} JSON file)"
        )
    pairs = _wheel_pairs_json(path) if path.suffix.lower() == ".json" else _wheel_pairs_csv(path)
    if not pairs:
        raise EmotionWheelError(f"emotion wheel file {path} lists no words")
    mapping: Dict[str, str] = {}
    for word, group in pairs:
        key = clean_label(word)
        if not key or not group.strip():
            raise EmotionWheelError(f"emotion wheel file {path}: empty word or group in ({word!r}, {group!r})")
        if mapping.get(key, group) != group:
            raise EmotionWheelError(
                f"emotion wheel file {path}: word {key!r} is in two groups, "
                f"{mapping[key]!r} and {group!r}; keep it in one"
            )
        mapping[key] = group
    return EmotionWheel(mapping, source=str(path))


def _wheel_pairs_json(path: Path) -> list:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EmotionWheelError(f"emotion wheel file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise EmotionWheelError(f"emotion wheel file {path}: expected a JSON object {{group: [words]}}")
    return [(str(word), str(group)) for group, words in data.items() for word in words]


def _wheel_pairs_csv(path: Path) -> list:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip() for f in reader.fieldnames or []]
        if "word" not in fields or "group" not in fields:
            raise EmotionWheelError(
                f"emotion wheel file {path} has columns {fields or 'none'}; expected a header "
                "'word,group' (or use a JSON file {group: [words]})"
            )
        reader.fieldnames = fields
        return [((row["word"] or "").strip(), (row["group"] or "").strip()) for row in reader]
