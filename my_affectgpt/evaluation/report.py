"""Score results files and keep the scores in ``scores.json``.

A results file is ``{output_dir}/results-{dataset}/{ckpt_name}.jsonl`` (inference's: ``name``,
``answer``, and the ``labels`` inference printed, which scoring never reads) or an original
AffectGPT ``{ckpt_name}.npz`` (``name2reason``). Labels come from the cache files beside it
(``{ckpt_name}-openset.npz``, ``-openset-sentiment.npz``; see ``label_cache``) when present,
otherwise they are extracted from the answers with the extractor given. ``scores.json``
holds::

    {"datasets": {dataset: {"kind": kind, "checkpoints": {ckpt_name: {metric: value}}}},
     "best": {dataset: {...}}}          # "best" only when asked for, see select_best

With the official MER-UniBench emotion-wheel folder, the paper's scores are added under
``ew_*`` names (see ``ew_metrics``). Checkpoints are never ranked unless the caller asks: the
test sets are the only labelled data here, so a "best" checkpoint is chosen on the test set
and says so.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

from my_affectgpt.common.atomic import write_text_atomic
from my_affectgpt.datasets.label_files import KINDS, parse_openset
from my_affectgpt.common.label_lists import split_label_list
from my_affectgpt.evaluation.emotion_wheel import OfficialEmotionWheels
from my_affectgpt.evaluation.ew_metrics import UndefinedWheelScore, ew_hit_rate, ew_overlap_scores
from my_affectgpt.evaluation.label_cache import Extractor, label_items, sentiment_value
from my_affectgpt.evaluation.label_extraction import canonicalize_labels
from my_affectgpt.evaluation.lexicon import canonical_label, normalize_label
from my_affectgpt.evaluation.metrics import (
    EmotionWheel,
    discrete_metrics,
    first_candidate,
    hit_rate,
    openset_metrics,
    sentiment_metrics,
)
from my_affectgpt.evaluation.results_io import ResultsFileError, read_answers

MAIN_METRIC = {"discrete": "weighted_f1", "sentiment": "weighted_f1", "openset": "fscore"}
# The metric MER-UniBench's table reports per kind of dataset.
HEADLINE_METRIC = {"discrete": "ew_hit_rate", "sentiment": "weighted_f1", "openset": "ew_fscore"}
OFFICIAL_WHEEL_PREFIX = "ew_"
LABEL_SOURCE = "label_source"
MISSING_GOLD_POLICIES = ("error", "skip")
BEST_NOTE = "best checkpoint chosen on the TEST set (optimistic; not a held-out model selection)"
LEGEND = (
    "[metric]: the dataset's main metric, MER-UniBench's headline one when it was computed.\n"
    "ew_*: MER-UniBench's emotion-wheel scores from the official wheel folder (mean over its 5 wheels;\n"
    "      level 1 unless the name says level2). Other metrics are this project's own.\n"
    "label_source: labels read from the cached label files beside the results, or extracted from the answers."
)

Candidates = Union[Sequence[str], Mapping[str, Sequence[str]], None]
Wheel = Union[EmotionWheel, OfficialEmotionWheels, None]


def _coerce_gold(kind: str, value: object, where: str) -> object:
    """One gold value in the form the scorer of ``kind`` needs."""
    if kind == "openset":
        labels = parse_openset(value)
        return {normalize_label(label) for label in labels} or {"neutral"}
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ResultsFileError(f"{where}: expected one gold {kind} value, got {value!r}")
        value = value[0]
    if kind == "sentiment":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ResultsFileError(f"{where}: gold valence {value!r} is not a number")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ResultsFileError(f"{where}: gold label {value!r} is not a label string")
    return canonical_label(value) or normalize_label(value)


def _gold_pairs(path: Path, names: Sequence[str], gold: Mapping[str, object], on_missing_gold: str):
    """``(name, raw gold)`` for every sample that has a gold value, and the skip count."""
    if on_missing_gold not in MISSING_GOLD_POLICIES:
        raise ValueError(f"on_missing_gold must be one of {MISSING_GOLD_POLICIES}, not {on_missing_gold!r}")
    pairs = [(name, gold[name]) for name in names if name in gold]
    missing = [name for name in names if name not in gold]
    if missing and (on_missing_gold == "error" or not pairs):
        raise ResultsFileError(
            f"results file {path}: {len(missing)} of {len(names)} samples have no gold label "
            f"(first: {missing[0]!r}); check the label file and its split, or skip them "
            "(--skip-missing-gold)"
        )
    return pairs, len(missing)


def score_results(
    results_path: str | Path,
    kind: str,
    gold: Mapping[str, object],
    candidates: Candidates = None,
    wheel: Wheel = None,
    extractor: Optional[Extractor] = None,
    on_missing_gold: str = "error",
    use_label_cache: bool = True,
) -> Dict[str, Union[float, str]]:
    """Scores of one results file (``.jsonl``, or an original ``.npz`` with ``name2reason``).

    ``gold`` maps sample names to gold values (a label, a valence, or a label list, as the
    ``label_files`` readers return them).
    ``candidates`` (discrete only) is the label set predictions are mapped into, shared or
    per sample; by default the set of gold labels. ``wheel``: the official MER-UniBench wheels
    (adds the ``ew_*`` scores) or a single grouping file (groups labels before ``hit_rate``
    and the open-vocabulary set overlap). Labels come from the cache files beside the results
    when present and ``use_label_cache``; otherwise ``extractor`` turns an answer into labels
    (default: the lexicon). ``on_missing_gold``: "error" or "skip" (skipped samples are
    counted in ``n_skipped_no_gold``). ``label_source`` says whether labels were cached or
    extracted.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    path = Path(results_path)
    answers = read_answers(path)
    pairs, n_missing = _gold_pairs(path, list(answers), gold, on_missing_gold)
    names = [name for name, _ in pairs]
    golds = [_coerce_gold(kind, value, f"{path}: sample {name!r}") for name, value in pairs]
    items, source = label_items(path, kind, {name: answers[name] for name in names}, extractor, use_label_cache)
    grouping = wheel if isinstance(wheel, EmotionWheel) else EmotionWheel({})

    if kind == "sentiment":
        scores = sentiment_metrics([sentiment_value(items[name]) for name in names], golds)
    else:
        labels = [split_label_list(items[name]) for name in names]
        if kind == "discrete":
            scores = _discrete_scores(path, names, labels, golds, candidates, grouping)
        else:
            pred_sets = [grouping.group_set(found) for found in labels]
            gold_sets = [grouping.group_set(g) for g in golds]
            scores = {**openset_metrics(pred_sets, gold_sets), "hit_rate": hit_rate(pred_sets, gold_sets)}
        if isinstance(wheel, OfficialEmotionWheels):
            scores.update(_official_wheel_scores(path, kind, [value for _, value in pairs], labels, wheel))
    scores["n_samples"] = float(len(pairs))
    if on_missing_gold == "skip":
        scores["n_skipped_no_gold"] = float(n_missing)
    scores[LABEL_SOURCE] = source
    return scores


def _official_wheel_scores(path: Path, kind: str, raw_golds, labels, wheels: OfficialEmotionWheels):
    """MER-UniBench's scores; gold values are read as its code reads them (no lexicon)."""
    gold_lists = [split_label_list(value) for value in raw_golds]
    try:
        if kind == "discrete":
            return {"ew_hit_rate": ew_hit_rate(gold_lists, labels, wheels)}
        level1 = ew_overlap_scores(gold_lists, labels, wheels, level=1)
        level2 = ew_overlap_scores(gold_lists, labels, wheels, level=2)
    except UndefinedWheelScore as exc:
        raise ResultsFileError(f"results file {path}: {exc}") from exc
    return {
        **{f"ew_{name}": value for name, value in level1.items()},
        **{f"ew_level2_{name}": value for name, value in level2.items()},
    }


def _discrete_scores(path, names, labels, golds, candidates: Candidates, wheel: EmotionWheel):
    def canonical_set(values):
        return {canonical_label(v) or normalize_label(v) for v in values}

    if candidates is None:
        shared = set(golds)
    elif isinstance(candidates, Mapping):
        shared = None
        absent = [n for n in names if n not in candidates]
        if absent:
            raise ResultsFileError(f"results file {path}: sample {absent[0]!r} has no candidate labels")
    else:
        shared = canonical_set(candidates)
    predicted, hits_pred = [], []
    for name, found in zip(names, labels):
        basic = canonicalize_labels(found)
        allowed = shared if shared is not None else canonical_set(candidates[name])
        predicted.append(first_candidate(basic, allowed))
        hits_pred.append(wheel.group_set([*found, *basic]))
    scores = discrete_metrics(predicted, golds)
    scores["hit_rate"] = hit_rate(hits_pred, [wheel.group_set([g]) for g in golds])
    return scores


# ----------------------------------------------------------------------------- scores.json


def empty_scores() -> dict:
    return {"datasets": {}}


def load_scores(path: str | Path) -> dict:
    """The scores in ``path``, or an empty table when the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return empty_scores()
    try:
        scores = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsFileError(f"scores file {path} is not valid JSON ({exc.msg}); delete it to start over") from exc
    if not isinstance(scores, dict) or not isinstance(scores.get("datasets"), dict):
        raise ResultsFileError(f"scores file {path} has no 'datasets' table; delete it to start over")
    return scores


def record_scores(scores: dict, dataset: str, kind: str, checkpoint: str, metrics: Mapping[str, float]) -> None:
    """Put one checkpoint's metrics for ``dataset`` into a scores table (in place)."""
    entry = scores["datasets"].setdefault(dataset, {"kind": kind, "checkpoints": {}})
    if entry["kind"] != kind:
        raise ValueError(f"dataset {dataset!r} was scored as {entry['kind']}, not {kind}")
    entry["checkpoints"][checkpoint] = dict(metrics)


def main_metric(entry: Mapping) -> str:
    """The metric a dataset's checkpoints are compared by: MER-UniBench's headline metric for
    its kind when every checkpoint has it, else this project's ``MAIN_METRIC``."""
    headline = HEADLINE_METRIC[entry["kind"]]
    if all(headline in values for values in entry["checkpoints"].values()):
        return headline
    return MAIN_METRIC[entry["kind"]]


def select_best(scores: dict) -> Dict[str, dict]:
    """Per dataset, the checkpoint with the highest main metric (ties: the first name in
    sort order), labelled as chosen on the test set. Call it only when the user asked."""
    best = {}
    for dataset, entry in scores["datasets"].items():
        metric = main_metric(entry)
        checkpoint = max(sorted(entry["checkpoints"]), key=lambda c: entry["checkpoints"][c][metric])
        best[dataset] = {
            "checkpoint": checkpoint,
            "metric": metric,
            "value": entry["checkpoints"][checkpoint][metric],
            "selected_on": "test set",
        }
    return best


def write_scores(path: str | Path, scores: dict, best: Optional[Mapping[str, dict]] = None) -> None:
    """Write ``scores`` (and ``best`` when given) to ``path`` atomically (temp file + rename)."""
    payload = {"datasets": scores["datasets"]}
    if best:
        payload["best"] = dict(best)
        payload["best_note"] = BEST_NOTE
    write_text_atomic(Path(path), json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _cell(metric: str, value: Union[float, str, None]) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return str(int(value)) if metric.startswith("n_") else f"{value:.4f}"


def _headline_note(kind: str, metric: str) -> str:
    headline = HEADLINE_METRIC[kind]
    if metric == headline:
        origin = "official emotion wheels" if metric.startswith(OFFICIAL_WHEEL_PREFIX) else "no emotion wheel needed"
        return f"MER-UniBench headline: {metric} ({origin})"
    return (
        f"MER-UniBench headline {headline} not computed (it needs --emotion-wheel / inference.emotion_wheel "
        f"set to the official wheel folder); {metric} is not comparable with the paper"
    )


def _column_order(metric: str, main: str):
    return (metric == LABEL_SOURCE, metric.startswith("n_"), metric != main,
            not metric.startswith(OFFICIAL_WHEEL_PREFIX), "level2" in metric, metric)


def format_table(scores: dict, best: Optional[Mapping[str, dict]] = None) -> str:
    """A plain-text table: one block per dataset, a row per checkpoint, a column per metric.

    Each block names MER-UniBench's headline metric of the dataset's kind and whether it was
    computed; the main metric's column is shown as ``[metric]``, and a legend follows."""
    blocks = []
    for dataset in sorted(scores["datasets"]):
        entry = scores["datasets"][dataset]
        checkpoints = entry["checkpoints"]
        main = main_metric(entry)
        metrics = sorted({m for values in checkpoints.values() for m in values}, key=lambda m: _column_order(m, main))
        chosen = (best or {}).get(dataset, {}).get("checkpoint")
        rows = [["checkpoint", *(f"[{m}]" if m == main else m for m in metrics)]]
        for checkpoint in sorted(checkpoints):
            mark = " *" if checkpoint == chosen else ""
            rows.append([checkpoint + mark, *(_cell(m, checkpoints[checkpoint].get(m)) for m in metrics)])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [f"{dataset} ({entry['kind']}): {_headline_note(entry['kind'], main)}"]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        blocks.append("\n".join(lines))
    if best:
        blocks.append(f"* {BEST_NOTE}; compared by each dataset's [metric]")
    if blocks:
        blocks.append(LEGEND)
    return "\n\n".join(blocks)
