"""scripts/verify_au_pipeline.py: JSONs, summary_description and AU feature files agree."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_au_agent import load_script

verify = load_script("verify_au_pipeline")
FEATURES = "au_CLIP_VITB32_8frms"


def _sample(root: Path, features: Path, name: str, texts, rows=None, width=512, json_text=None) -> None:
    path = root / "MER2023" / name / f"{name}_au_analysis.json"
    path.parent.mkdir(parents=True)
    summary = {str(10 * (i + 1)): t for i, t in enumerate(texts)}
    path.write_text(json_text if json_text is not None else json.dumps({"summary_description": summary}))
    if rows is not None:
        (features / FEATURES).mkdir(parents=True, exist_ok=True)
        np.save(features / FEATURES / f"{name}.npy", np.zeros((rows, width), dtype=np.float32))


@pytest.fixture
def layout(tmp_path):
    root, features = tmp_path / "mfo", tmp_path / "features"
    _sample(root, features, "good", ["The brows lower.", "The lips part."], rows=2)
    return root, features


def _run(root: Path, features: Path, *extra: str) -> int:
    return verify.main(["--mer-factory-output", str(root), "--dataset-folder", "MER2023",
                        "--features-root", str(features), *extra])


def test_a_consistent_dataset_passes(layout, capsys):
    assert _run(*layout) == 0
    assert "checked 1 sample(s)" in capsys.readouterr().out


def test_every_kind_of_problem_is_listed_per_sample(layout, capsys):
    root, features = layout
    _sample(root, features, "no_summary", [], rows=0)
    _sample(root, features, "empty_texts", ["", "  "], rows=2)
    _sample(root, features, "no_npy", ["The jaw drops."])
    _sample(root, features, "wrong_rows", ["a", "b", "c"], rows=2)
    _sample(root, features, "wrong_width", ["a"], rows=1, width=768)
    _sample(root, features, "truncated", [], rows=1, json_text='{"summary_description": {"1": "a')
    np.save(features / FEATURES / "nan_rows.npy", np.full((1, 512), np.nan, dtype=np.float32))
    _sample(root, features, "nan_rows", ["a"])

    assert _run(root, features) == 1
    out = capsys.readouterr().out
    table = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith((" ", "-", "sample", "checked"))}
    assert "checked 8 sample(s)" in out and "7 with problems" in out
    assert "summary_description missing or empty" in table["no_summary"]
    assert "summary_description missing or empty" in table["empty_texts"]
    assert "feature file missing" in table["no_npy"]
    assert "2 feature rows but 3 descriptions" in table["wrong_rows"]
    assert "is not [N, 512]" in table["wrong_width"]
    assert "not valid JSON" in table["truncated"]
    assert "NaN or inf" in table["nan_rows"]
    assert "good" not in table


def test_names_from_a_csv_include_missing_jsons(layout, capsys):
    root, features = layout
    csv_path = root.parent / "names.csv"
    csv_path.write_text("name,label\ngood,happy\nabsent,sad\n")
    assert _run(root, features, "--csv_path", str(csv_path), "--csv_column", "name") == 1
    out = capsys.readouterr().out
    assert "checked 2 sample(s)" in out
    assert "AU JSON missing" in out and "absent_au_analysis.json" in out


def test_without_features_root_only_jsons_are_checked(layout, capsys):
    root, _ = layout
    assert verify.main(["--mer-factory-output", str(root), "--dataset-folder", "MER2023"]) == 0
    assert ".npy features are not checked" in capsys.readouterr().out


def test_usage_errors_exit_2(tmp_path, layout, capsys):
    root, features = layout
    csv_path = tmp_path / "names.csv"
    csv_path.write_text("video\ns1\n")
    assert _run(root, features, "--csv_path", str(csv_path)) == 2
    assert "missing column(s) name" in capsys.readouterr().err
    assert verify.main(["--mer-factory-output", str(tmp_path / "nowhere"), "--dataset-folder", "X"]) == 2
