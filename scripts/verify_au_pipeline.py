"""Check a dataset's AU channel before training.

    python scripts/verify_au_pipeline.py --mer-factory-output ~/data/mer_factory_output \\
        --dataset-folder MER2023 --features-root ~/features/MER2023 \\
        [--csv_path names.csv --csv_column name]

For every sample (the names in ``--csv_path``, or every ``<name>/<name>_au_analysis.json``
under the dataset folder) it checks that the AU JSON exists and parses, that its
``summary_description`` is present and non-empty, and, with ``--features-root``, that
``{features_root}/au_CLIP_VITB32_8frms/{name}.npy`` exists, is a finite ``[N, 512]`` matrix
and has one row per description. Problems are printed as a table; the exit status is 1 when
any sample has one, 2 for a usage error (missing CSV, bad column), 0 otherwise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from my_affectgpt.common.errors import UserError
from my_affectgpt.processors.au_json import AU_JSON_SUFFIX, AUJsonLocator  # noqa: E402
from my_affectgpt.datasets.features import AU_FEATURE_FOLDER  # noqa: E402
GENERATE_HINT = "run scripts/generate_au_descriptions.py"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="verify_au_pipeline.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mer-factory-output", required=True, help="MER-Factory output root")
    parser.add_argument("--dataset-folder", default="", help="dataset folder under the root, e.g. MER2023")
    parser.add_argument(
        "--features-root", default="", help=f"folder holding {AU_FEATURE_FOLDER}/ (no .npy checks when empty)"
    )
    parser.add_argument("--csv_path", default="", help="CSV listing the samples (default: every JSON found)")
    parser.add_argument("--csv_column", default="name", help="the CSV's sample-name column")
    parser.add_argument("--au-dim", type=int, default=512, help="expected feature width (CLIP ViT-B/32 text: 512)")
    return parser.parse_args(argv)


def sample_names(args: argparse.Namespace, locator: AUJsonLocator) -> List[str]:
    if args.csv_path:
        from my_affectgpt.datasets.tables import read_csv

        table = read_csv(Path(args.csv_path).expanduser(), [args.csv_column])
        return list(dict.fromkeys(str(name).strip() for name in table[args.csv_column]))
    found = locator.base.glob(f"*/*{AU_JSON_SUFFIX}")
    return sorted(p.parent.name for p in found if p.name == f"{p.parent.name}{AU_JSON_SUFFIX}")


def check_features(path: Path, rows: Optional[int], au_dim: int) -> List[str]:
    import numpy as np

    if not path.is_file():
        return [f"feature file missing: {path} (run extract_multimodal_features_precompute.py --modality au)"]
    try:
        features = np.load(path, allow_pickle=False, mmap_mode="r")
    except Exception as err:  # numpy raises ValueError/OSError/EOFError for bad files
        return [f"unreadable feature file {path}: {err}"]
    if features.ndim != 2 or features.shape[1] != au_dim:
        return [f"feature shape {list(features.shape)} is not [N, {au_dim}]: {path}"]
    problems = []
    if rows is not None and features.shape[0] != rows:
        problems.append(f"{features.shape[0]} feature rows but {rows} descriptions: re-extract {path.name}")
    if not np.isfinite(features).all():
        problems.append(f"features contain NaN or inf: {path}")
    return problems


def check_sample(name: str, locator: AUJsonLocator, features_dir: Optional[Path], au_dim: int) -> List[str]:
    """Problems of one sample (empty when it is fine)."""
    from my_affectgpt.processors.au_json import AUJsonError, load_au_analysis
    from my_affectgpt.common.sample_names import InvalidSampleNameError

    try:
        path = locator.path(name)
    except InvalidSampleNameError as err:
        return [str(err)]
    problems, rows = [], None
    if not path.is_file():
        problems.append(f"AU JSON missing: {path}")
    else:
        try:
            analysis = load_au_analysis(path)
        except AUJsonError as err:
            problems.append(str(err))
        else:
            if analysis.summary_source == "summary_description":
                rows = len(analysis.summary_texts)
            else:
                problems.append(f"summary_description missing or empty: {GENERATE_HINT}")
    if features_dir is not None:
        problems += check_features(features_dir / f"{name}.npy", rows, au_dim)
    return problems


def print_table(problems: Dict[str, List[str]]) -> None:
    width = max(len("sample"), *(len(name) for name in problems))
    print(f"{'sample':<{width}}  problem")
    print(f"{'-' * width}  {'-' * 7}")
    for name, entries in problems.items():
        for i, entry in enumerate(entries):
            print(f"{name if i == 0 else '':<{width}}  {entry}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        locator = AUJsonLocator(Path(args.mer_factory_output).expanduser(), args.dataset_folder or None)
        names = sample_names(args, locator)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not names:
        print(
            f"error: no samples: no <name>/<name>{AU_JSON_SUFFIX} under {locator.base} and no --csv_path",
            file=sys.stderr,
        )
        return 2
    features_dir = Path(args.features_root).expanduser() / AU_FEATURE_FOLDER if args.features_root else None
    if features_dir is None:
        print("note: no --features-root given; .npy features are not checked")
    problems = {}
    for name in names:
        found = check_sample(name, locator, features_dir, args.au_dim)
        if found:
            problems[name] = found
    print(f"checked {len(names)} sample(s) under {locator.base}: {len(problems)} with problems")
    if problems:
        print_table(problems)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
