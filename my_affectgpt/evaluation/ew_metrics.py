"""MER-UniBench's emotion-wheel (EW) scores, computed through the official wheels.

Both scores are computed on each of the five wheels and then averaged over the wheels.
Labels are mapped to wheel groups by :class:`OfficialEmotionWheels` (labels that map to
nothing are dropped, duplicates collapse, case does not matter), and a sample whose gold
labels all map to nothing (e.g. "neutral", which no wheel lists) is left out on that wheel.

* open-vocabulary: per sample, precision |P & G| / |P| and recall |P & G| / |G| of the
  predicted groups P against the gold groups G (both 0 when P is empty); per wheel, the
  sample means and F = 2PR / (P + R); the reported F, precision and recall are the means of
  the per-wheel values (so F is not the harmonic mean of the reported P and R).
* discrete: the hit rate, per wheel the mean over samples of |P & G| (the gold label maps to
  at most one group, so this is the share of samples whose gold group was predicted).
"""
from __future__ import annotations

from statistics import fmean
from typing import Dict, List, Sequence

from my_affectgpt.evaluation.emotion_wheel import OfficialEmotionWheels

LabelLists = Sequence[Sequence[str]]


class UndefinedWheelScore(ValueError):
    """No sample's gold labels map onto a wheel, so its mean is over nothing."""


def _check(gold: LabelLists, predicted: LabelLists) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold values")


def _undefined(wheels: OfficialEmotionWheels, wheel: str, level: int) -> UndefinedWheelScore:
    return UndefinedWheelScore(
        f"no sample's gold labels map onto {wheel} (level {level}) of {wheels.source}, so the emotion-wheel "
        "scores are undefined (MER-UniBench's own code gives NaN here); score more samples, or samples "
        "whose gold labels are emotions the wheels list (e.g. not only 'neutral')"
    )


def ew_overlap_scores(
    gold: LabelLists, predicted: LabelLists, wheels: OfficialEmotionWheels, level: int = 1
) -> Dict[str, float]:
    """Wheel-mapped ``fscore``, ``precision`` and ``recall``, averaged over the wheels.

    A wheel where both means are 0 gets F = 0 (MER-UniBench's code divides 0 by 0 there).
    """
    _check(gold, predicted)
    per_wheel: List[tuple] = []
    for wheel in wheels.wheels:
        precisions, recalls = [], []
        for gold_labels, predicted_labels in zip(gold, predicted):
            gold_groups = wheels.group_set(gold_labels, wheel, level)
            if not gold_groups:
                continue
            predicted_groups = wheels.group_set(predicted_labels, wheel, level)
            common = len(gold_groups & predicted_groups)
            precisions.append(common / len(predicted_groups) if predicted_groups else 0.0)
            recalls.append(common / len(gold_groups) if predicted_groups else 0.0)
        if not precisions:
            raise _undefined(wheels, wheel, level)
        precision, recall = fmean(precisions), fmean(recalls)
        fscore = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        per_wheel.append((fscore, precision, recall))
    return {
        "fscore": fmean(f for f, _, _ in per_wheel),
        "precision": fmean(p for _, p, _ in per_wheel),
        "recall": fmean(r for _, _, r in per_wheel),
    }


def ew_hit_rate(gold: LabelLists, predicted: LabelLists, wheels: OfficialEmotionWheels) -> float:
    """MER-UniBench's hit rate for discrete datasets (level 1), averaged over the wheels."""
    _check(gold, predicted)
    rates = []
    for wheel in wheels.wheels:
        hits = []
        for gold_labels, predicted_labels in zip(gold, predicted):
            gold_groups = wheels.group_set(gold_labels, wheel, 1)
            if gold_groups:
                hits.append(len(gold_groups & wheels.group_set(predicted_labels, wheel, 1)))
        if not hits:
            raise _undefined(wheels, wheel, 1)
        rates.append(fmean(hits))
    return fmean(rates)
