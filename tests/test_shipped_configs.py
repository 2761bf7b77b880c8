"""Every shipped config loads and validates unchanged; the config reference cannot drift."""
from __future__ import annotations

import pytest

from conftest import REPO_ROOT
from my_affectgpt.common.config import describe, load_config

SHIPPED = sorted(p.relative_to(REPO_ROOT) for p in [*REPO_ROOT.glob("train_configs/*.yaml"),
                                                       *REPO_ROOT.glob("eval_configs/*.yaml")])


def test_the_design_named_configs_ship():
    names = {str(p) for p in SHIPPED}
    assert {"train_configs/demo.yaml", "eval_configs/demo.yaml",
            "train_configs/recommended_train_with_preextracted_au.yaml",
            "eval_configs/recommended_inference_with_clip_realtime.yaml",
            "train_configs/au_agent_lora.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=str)
def test_shipped_config_validates(path):
    cfg = load_config(REPO_ROOT / path)
    assert cfg.datasets and cfg.model.llama_model


def test_recommended_configs_say_what_the_workflow_says():
    train = load_config(REPO_ROOT / "train_configs/recommended_train_with_preextracted_au.yaml")
    assert train.model.skip_encoders is True and train.model.use_au_agent is False
    assert all(ds.use_preextracted_features for ds in train.datasets.values())
    infer = load_config(REPO_ROOT / "eval_configs/recommended_inference_with_clip_realtime.yaml")
    assert infer.model.skip_encoders is False and infer.model.use_au_agent is False
    assert infer.inference.use_au_clip_realtime is True and infer.inference.mer_factory_output


def test_config_reference_in_docs_matches_the_schema():
    reference = (REPO_ROOT / "docs" / "CONFIG_REFERENCE.md").read_text()
    assert describe() in reference, (
        "docs/CONFIG_REFERENCE.md is stale: regenerate it with "
        "python -m my_affectgpt.common.config --describe"
    )
