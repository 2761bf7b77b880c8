"""Score inference results: ``python -m my_affectgpt.evaluation``.

Example (MER-UniBench's scores, through its official emotion-wheel folder)::

    python -m my_affectgpt.evaluation --results-dir output/eval \\
        --dataset mer2023:discrete:/data/mer2023/label-6way.npz --split mer2023=test1_corpus \\
        --dataset cmumosi:sentiment:/data/cmumosi/label.npz \\
        --dataset ovmerdplus:openset:/data/ovmerdplus/ovlabel.csv \\
        --emotion-wheel AffectGPT/emotion_wheel

Every results file in ``{results-dir}/results-{NAME}/`` is scored, one checkpoint per file:
``{ckpt}.jsonl`` (this project's inference) or ``{ckpt}.npz`` (``name2reason``, the original
AffectGPT's). Labels are read from the cached label files beside it (``{ckpt}-openset.npz``,
``{ckpt}-openset-sentiment.npz``) when present, else extracted from the answers. The scores
of the named datasets are replaced in ``scores.json`` (default: in the results directory;
other datasets already there are kept), and a table is printed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from my_affectgpt.common.errors import UserError
from my_affectgpt.datasets.label_files import KINDS, read_candidates_csv, read_gold
from my_affectgpt.evaluation.label_extraction import LLMLabelExtractor
from my_affectgpt.evaluation.metrics import load_emotion_wheel
from my_affectgpt.evaluation.report import (
    format_table,
    load_scores,
    record_scores,
    score_results,
    select_best,
    write_scores,
)
from my_affectgpt.evaluation.results_io import results_files


def _dataset_arg(value: str):
    parts = value.split(":", 2)
    if len(parts) != 3 or not parts[0] or parts[1] not in KINDS or not parts[2]:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected NAME:KIND:LABEL_FILE with KIND one of {', '.join(KINDS)}"
        )
    return parts[0], parts[1], Path(parts[2])


def _named_arg(value: str):
    name, sep, rest = value.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"{value!r}: expected NAME=VALUE")
    return name, rest


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m my_affectgpt.evaluation",
        description="Extract emotion labels from inference answers and score them per dataset and checkpoint.",
    )
    parser.add_argument("--results-dir", required=True, type=Path,
                        help="folder holding results-{dataset}/{checkpoint}.jsonl (inference's run.output_dir) "
                             "or original results-{dataset}/{checkpoint}.npz (name2reason)")
    parser.add_argument("--dataset", required=True, action="append", type=_dataset_arg,
                        metavar="NAME:KIND:LABEL_FILE",
                        help="a dataset to score; KIND is discrete, sentiment or openset; LABEL_FILE is a .npz "
                             "or .csv gold-label file (for a MER-Caption+-style held-out folder: its name,openset "
                             "CSV). Repeatable")
    parser.add_argument("--split", action="append", type=_named_arg, default=[], metavar="NAME=KEY",
                        help="split key inside a .npz label file, e.g. mer2023=test1_corpus (default: the only "
                             "split, or test_corpus)")
    parser.add_argument("--label-names", action="append", type=_named_arg, default=[], metavar="NAME=a,b,...",
                        help="class names in index order, for .npz files that store class indices")
    parser.add_argument("--candidates", action="append", type=_named_arg, default=[], metavar="NAME=FILE",
                        help="discrete: per-sample candidate labels, a CSV name,candidates")
    parser.add_argument("--label-set", action="append", type=_named_arg, default=[], metavar="NAME=a,b,...",
                        help="discrete: the label set predictions are mapped into (default: the gold labels)")
    parser.add_argument("--emotion-wheel", type=Path, metavar="DIR_OR_FILE",
                        help="the official MER-UniBench emotion-wheel folder (format.csv, synonym.xlsx, "
                             "wheel1..5.xlsx): adds the paper's ew_* scores; or a single grouping file (CSV "
                             "word,group or JSON {group: [words]}) applied before set comparison and hit_rate")
    parser.add_argument("--ignore-label-cache", action="store_true",
                        help="extract labels from the answers even where {checkpoint}-openset.npz / "
                             "-openset-sentiment.npz label files exist beside the results")
    parser.add_argument("--llm-extractor", type=Path, metavar="MODEL_DIR",
                        help="extract labels with this local causal LM instead of the built-in lexicon")
    parser.add_argument("--llm-device", default="cpu", help="device for --llm-extractor (default: cpu)")
    parser.add_argument("--skip-missing-gold", action="store_true",
                        help="skip (and count) results samples without a gold label instead of failing")
    parser.add_argument("--report-best", action="store_true",
                        help="also name the best checkpoint per dataset; it is chosen on the TEST set")
    parser.add_argument("--out", type=Path, help="scores file (default: RESULTS_DIR/scores.json)")
    return parser


def _by_name(pairs: Sequence[tuple], option: str, datasets: Sequence[str]) -> Dict[str, str]:
    table = dict(pairs)
    unknown = sorted(set(table) - set(datasets))
    if unknown:
        raise ValueError(f"{option} names {unknown[0]!r}, which is not a --dataset")
    return table


def run(args: argparse.Namespace) -> str:
    """Score every results file of the requested datasets; returns the printed report."""
    names = [name for name, _, _ in args.dataset]
    splits = _by_name(args.split, "--split", names)
    label_names = _by_name(args.label_names, "--label-names", names)
    candidate_files = _by_name(args.candidates, "--candidates", names)
    label_sets = _by_name(args.label_set, "--label-set", names)
    wheel = load_emotion_wheel(args.emotion_wheel) if args.emotion_wheel else None
    extractor = LLMLabelExtractor(args.llm_extractor, device=args.llm_device) if args.llm_extractor else None
    out = args.out or args.results_dir / "scores.json"

    scores = load_scores(out)
    for name, kind, label_file in args.dataset:
        classes = label_names[name].split(",") if name in label_names else None
        gold = read_gold(label_file, kind, splits.get(name), classes)
        if kind != "discrete" and (name in candidate_files or name in label_sets):
            raise ValueError(f"--candidates/--label-set apply to discrete datasets; {name!r} is {kind}")
        candidates = None
        if name in candidate_files:
            candidates = read_candidates_csv(candidate_files[name])
        elif name in label_sets:
            candidates = [label.strip() for label in label_sets[name].split(",") if label.strip()]
        scores["datasets"].pop(name, None)
        for path in results_files(args.results_dir, name):
            metrics = score_results(
                path, kind, gold, candidates=candidates, wheel=wheel, extractor=extractor,
                on_missing_gold="skip" if args.skip_missing_gold else "error",
                use_label_cache=not args.ignore_label_cache,
            )
            record_scores(scores, name, kind, path.stem, metrics)
    best = select_best(scores) if args.report_best else None
    write_scores(out, scores, best)
    return format_table(scores, best) + f"\n\nscores written to {out}"


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        print(run(args))
    except (UserError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
