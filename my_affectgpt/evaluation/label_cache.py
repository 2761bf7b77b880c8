"""Label files cached beside a results file, in the shape MER-UniBench's evaluation writes them.

For results ``{ckpt}.jsonl`` / ``{ckpt}.npz`` of one checkpoint:

* ``{ckpt}-openset.npz``: ``filenames`` (sample names) and ``fileitems`` (per sample, the
  emotion labels found in its answer as one list string, e.g. ``"[happy, excited]"``). Every
  kind of dataset is scored from these: open-vocabulary and discrete datasets directly;
* ``{ckpt}-openset-sentiment.npz``: ``filenames`` and ``fileitems`` (``"positive"``,
  ``"negative"`` or ``"neutral"``), read for sentiment datasets; any other word counts as 0,
  as in MER-UniBench.

When such a file is present, scoring reads its labels instead of extracting them, so results
scored once with an LLM extractor (the original evaluation's Qwen, or ``--llm-extractor``)
can be scored again without it. :func:`write_label_caches` writes both files from this
project's extractor, so freshly extracted labels and cached ones give the same scores.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from my_affectgpt.common.atomic import write_file_atomic
from my_affectgpt.datasets.label_files import KINDS
from my_affectgpt.common.label_lists import split_label_list
from my_affectgpt.evaluation.label_extraction import extract_open_labels, predict_valence, valence_from_labels
from my_affectgpt.evaluation.results_io import ResultsFileError, read_answers

Extractor = Callable[[str], List[str]]
SENTIMENT_VALUES = {"positive": 1.0, "negative": -1.0, "neutral": 0.0}
LABELS_CACHED, LABELS_EXTRACTED = "cached", "extracted"


def openset_cache_path(results_path: str | Path) -> Path:
    path = Path(results_path)
    return path.with_name(f"{path.stem}-openset.npz")


def sentiment_cache_path(results_path: str | Path) -> Path:
    path = Path(results_path)
    return path.with_name(f"{path.stem}-openset-sentiment.npz")


def format_label_list(labels: Iterable[str]) -> str:
    """``["happy", "sad"]`` -> ``"[happy, sad]"``, the list string the caches hold."""
    return "[" + ", ".join(labels) + "]"


def sentiment_word(valence: float) -> str:
    return "positive" if valence > 0 else "negative" if valence < 0 else "neutral"


def sentiment_value(item: str) -> float:
    """1, -1 or 0 for a sentiment cache item; an unexpected word counts 0."""
    return SENTIMENT_VALUES.get(item, 0.0)


def extract_openset_items(answers: Mapping[str, str], extractor: Optional[Extractor] = None) -> Dict[str, str]:
    """Per sample, the list string of the labels in its answer (default extractor: the lexicon)."""
    extract = extractor or extract_open_labels
    return {name: format_label_list(extract(answer)) for name, answer in answers.items()}


def extract_sentiment_items(
    answers: Mapping[str, str],
    extractor: Optional[Extractor] = None,
    openset_items: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    """Per sample, positive/negative/neutral: with the lexicon, the sign of the answer's
    valence; with an extractor, the sign of its labels' mean polarity (the labels are taken
    from ``openset_items`` when given, so the extractor runs once per answer)."""
    if extractor is None:
        return {name: sentiment_word(predict_valence(answer)) for name, answer in answers.items()}
    items = openset_items if openset_items is not None else extract_openset_items(answers, extractor)
    return {name: sentiment_word(valence_from_labels(split_label_list(items[name]))) for name in answers}


def read_label_cache(path: str | Path) -> Dict[str, str]:
    """Sample name -> item of a cache file (``filenames``, ``fileitems``)."""
    import numpy as np

    path = Path(path)
    fix = "delete it to extract the labels again (or score with --ignore-label-cache)"
    try:
        with np.load(path, allow_pickle=False) as npz:
            absent = [key for key in ("filenames", "fileitems") if key not in npz.files]
            if absent:
                raise ResultsFileError(
                    f"label cache {path} has the keys {', '.join(npz.files) or 'none'}, not {' and '.join(absent)}; {fix}"
                )
            names, items = npz["filenames"], npz["fileitems"]
    except ResultsFileError:
        raise
    except Exception as exc:  # numpy raises OSError, ValueError (pickled arrays) or zipfile errors
        raise ResultsFileError(f"label cache {path} is not a readable .npz of strings ({exc}); {fix}") from exc
    if names.ndim != 1 or items.shape != names.shape:
        raise ResultsFileError(
            f"label cache {path}: 'filenames' {names.shape} and 'fileitems' {items.shape} must be lists of the "
            f"same length; {fix}"
        )
    table = dict(zip(map(str, names.tolist()), map(str, items.tolist())))
    if len(table) != len(names):
        raise ResultsFileError(f"label cache {path} lists a sample name twice; {fix}")
    return table


def write_label_cache(path: str | Path, items: Mapping[str, str]) -> None:
    """Write ``filenames``/``fileitems`` atomically (string arrays, never pickled)."""
    import numpy as np

    names = np.array(list(items), dtype=str)
    values = np.array([items[name] for name in items], dtype=str)
    write_file_atomic(Path(path), lambda fh: np.savez_compressed(fh, filenames=names, fileitems=values))


def label_items(
    results_path: str | Path,
    kind: str,
    answers: Mapping[str, str],
    extractor: Optional[Extractor] = None,
    use_cache: bool = True,
) -> Tuple[Dict[str, str], str]:
    """Per sample of ``answers``, its cache item (a sentiment word for ``kind`` "sentiment",
    a label list string otherwise), and whether they were ``cached`` or ``extracted``.

    A cache file beside ``results_path`` is read when present (and ``use_cache``); it must
    hold every sample of ``answers``. Otherwise the items are extracted from the answers.
    """
    cache = (sentiment_cache_path if kind == "sentiment" else openset_cache_path)(results_path)
    if use_cache and cache.is_file():
        items = read_label_cache(cache)
        missing = [name for name in answers if name not in items]
        if missing:
            raise ResultsFileError(
                f"label cache {cache} has no labels for {len(missing)} of the {len(answers)} samples of "
                f"{results_path} (first: {missing[0]!r}), so it was written for other results; delete it to "
                "extract the labels again (or score with --ignore-label-cache)"
            )
        return {name: items[name] for name in answers}, LABELS_CACHED
    extract = extract_sentiment_items if kind == "sentiment" else extract_openset_items
    return extract(answers, extractor), LABELS_EXTRACTED


def write_label_caches(results_path: str | Path, kind: str, extractor: Optional[Extractor] = None) -> List[Path]:
    """Extract the labels of every answer in ``results_path`` and write the cache files beside
    it: ``{ckpt}-openset.npz`` always, ``{ckpt}-openset-sentiment.npz`` too for ``kind``
    "sentiment". Existing caches are replaced. Returns the paths written."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    answers = read_answers(results_path)
    openset = extract_openset_items(answers, extractor)
    write_label_cache(openset_cache_path(results_path), openset)
    written = [openset_cache_path(results_path)]
    if kind == "sentiment":
        write_label_cache(sentiment_cache_path(results_path), extract_sentiment_items(answers, extractor, openset))
        written.append(sentiment_cache_path(results_path))
    return written
