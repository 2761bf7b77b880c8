"""Score inference results files and keep the scores in ``scores.json``.

A results file is ``{output_dir}/results-{dataset}/{ckpt_name}.jsonl`` with one JSON object
per sample: at least ``name`` and ``answer``; inference also writes ``prompt_kind`` and
``labels`` (the labels it extracted). Scoring always extracts labels from ``answer`` again,
with the extractor it is given, so stored labels never decide a score. ``scores.json``
holds::

    {"datasets": {dataset: {"kind": kind, "checkpoints": {ckpt_name: {metric: value}}}},
     "best": {dataset: {...}}}          # "best" only when asked for, see select_best

Checkpoints are never ranked unless the caller asks: the test sets are the only labelled
data here, so a "best" checkpoint is chosen on the test set and says so.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

from my_affectgpt.common.atomic import write_text_atomic
from my_affectgpt.datasets.label_files import KINDS, parse_openset
from my_affectgpt.evaluation.label_extraction import (
    canonicalize_labels,
    extract_open_labels,
    predict_valence,
    valence_from_labels,
)
from my_affectgpt.evaluation.lexicon import canonical_label, normalize_label
from my_affectgpt.evaluation.metrics import (
    EmotionWheel,
    discrete_metrics,
    first_candidate,
    hit_rate,
    openset_metrics,
    sentiment_metrics,
)

MAIN_METRIC = {"discrete": "weighted_f1", "sentiment": "weighted_f1", "openset": "fscore"}
MISSING_GOLD_POLICIES = ("error", "skip")
BEST_NOTE = "best checkpoint chosen on the TEST set (optimistic; not a held-out model selection)"

Candidates = Union[Sequence[str], Mapping[str, Sequence[str]], None]
Extractor = Callable[[str], List[str]]


class ResultsFileError(ValueError):
    """A results file, or a results/gold combination, that cannot be scored."""


def read_results(path: str | Path) -> List[dict]:
    """The sample records of a results JSONL file, checked for ``name``/``answer`` and
    duplicate names."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist; run inference first")
    records, first_line = [], {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ResultsFileError(
                    f"results file {path}, line {number} is not valid JSON ({exc.msg}); "
                    "delete that line and rerun inference, which resumes the missing samples"
                ) from exc
            if not isinstance(record, dict) or not isinstance(record.get("name"), str) \
                    or not isinstance(record.get("answer"), str):
                raise ResultsFileError(
                    f"results file {path}, line {number}: expected an object with string "
                    "'name' and 'answer'"
                )
            name = record["name"]
            if name in first_line:
                raise ResultsFileError(
                    f"results file {path}: sample {name!r} appears on lines {first_line[name]} "
                    f"and {number}; keep one of them"
                )
            first_line[name] = number
            records.append(record)
    if not records:
        raise ResultsFileError(f"results file {path} has no samples")
    return records


def results_files(results_dir: str | Path, dataset: str) -> List[Path]:
    """The ``*.jsonl`` files of ``{results_dir}/results-{dataset}`` (name matched without
    regard to case), sorted by checkpoint name."""
    results_dir = Path(results_dir)
    wanted = f"results-{dataset}".lower()
    folders = sorted(p for p in results_dir.glob("results-*") if p.is_dir())
    folder = next((p for p in folders if p.name == f"results-{dataset}"), None) or next(
        (p for p in folders if p.name.lower() == wanted), None
    )
    if folder is None:
        found = ", ".join(p.name for p in folders) or "none"
        raise FileNotFoundError(
            f"no folder results-{dataset} in {results_dir} (found: {found}); "
            "check --results-dir and the dataset name"
        )
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{folder} holds no .jsonl results files")
    return files


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


def _gold_pairs(path: Path, records: List[dict], gold: Mapping[str, object], on_missing_gold: str):
    """``(record, raw gold)`` for every record that has a gold value, and the skip count."""
    if on_missing_gold not in MISSING_GOLD_POLICIES:
        raise ValueError(f"on_missing_gold must be one of {MISSING_GOLD_POLICIES}, not {on_missing_gold!r}")
    pairs, missing = [], []
    for record in records:
        if record["name"] in gold:
            pairs.append((record, gold[record["name"]]))
        else:
            missing.append(record["name"])
    if missing and (on_missing_gold == "error" or not pairs):
        raise ResultsFileError(
            f"results file {path}: {len(missing)} of {len(records)} samples have no gold label "
            f"(first: {missing[0]!r}); check the label file and its split, or skip them "
            "(--skip-missing-gold)"
        )
    return pairs, len(missing)


def score_results(
    results_jsonl_path: str | Path,
    kind: str,
    gold: Mapping[str, object],
    candidates: Candidates = None,
    wheel: Optional[EmotionWheel] = None,
    extractor: Optional[Extractor] = None,
    on_missing_gold: str = "error",
) -> Dict[str, float]:
    """Scores of one results file.

    ``gold`` maps sample names to gold values (a label, a valence, or a label list, as the
    ``label_files`` readers return them).
    ``candidates`` (discrete only) is the label set predictions are mapped into, shared or
    per sample; by default the set of gold labels. ``extractor`` turns an answer into
    labels (default: the lexicon's ``extract_open_labels``). ``on_missing_gold``: "error"
    or "skip" (skipped samples are counted in ``n_skipped_no_gold``).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    path = Path(results_jsonl_path)
    pairs, n_missing = _gold_pairs(path, read_results(path), gold, on_missing_gold)
    golds = [_coerce_gold(kind, value, f"{path}: sample {rec['name']!r}") for rec, value in pairs]
    answers = [rec["answer"] for rec, _ in pairs]
    extract = extractor or extract_open_labels
    wheel = wheel or EmotionWheel({})

    if kind == "sentiment":
        valences = [valence_from_labels(extract(a)) if extractor else predict_valence(a) for a in answers]
        scores = sentiment_metrics(valences, golds)
    else:
        labels = [extract(answer) for answer in answers]
        if kind == "discrete":
            scores = _discrete_scores(path, [rec["name"] for rec, _ in pairs], labels, golds, candidates, wheel)
        else:
            pred_sets = [wheel.group_set(found) for found in labels]
            gold_sets = [wheel.group_set(g) for g in golds]
            scores = {**openset_metrics(pred_sets, gold_sets), "hit_rate": hit_rate(pred_sets, gold_sets)}
    scores["n_samples"] = float(len(pairs))
    if on_missing_gold == "skip":
        scores["n_skipped_no_gold"] = float(n_missing)
    return scores


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


def select_best(scores: dict) -> Dict[str, dict]:
    """Per dataset, the checkpoint with the highest main metric (ties: the first name in
    sort order), labelled as chosen on the test set. Call it only when the user asked."""
    best = {}
    for dataset, entry in scores["datasets"].items():
        metric = MAIN_METRIC[entry["kind"]]
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


def _cell(metric: str, value: Optional[float]) -> str:
    if value is None:
        return "-"
    return str(int(value)) if metric.startswith("n_") else f"{value:.4f}"


def format_table(scores: dict, best: Optional[Mapping[str, dict]] = None) -> str:
    """A plain-text table: one block per dataset, a row per checkpoint, a column per metric."""
    blocks = []
    for dataset in sorted(scores["datasets"]):
        entry = scores["datasets"][dataset]
        checkpoints = entry["checkpoints"]
        metrics = sorted({m for values in checkpoints.values() for m in values},
                         key=lambda m: (m.startswith("n_"), m != MAIN_METRIC[entry["kind"]], m))
        chosen = (best or {}).get(dataset, {}).get("checkpoint")
        rows = [["checkpoint", *metrics]]
        for checkpoint in sorted(checkpoints):
            mark = " *" if checkpoint == chosen else ""
            rows.append([checkpoint + mark, *(_cell(m, checkpoints[checkpoint].get(m)) for m in metrics)])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [f"{dataset} ({entry['kind']})"]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        blocks.append("\n".join(lines))
    if best:
        blocks.append(f"* {BEST_NOTE}")
    return "\n\n".join(blocks)
