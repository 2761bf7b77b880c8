"""Shared fixtures: the real demo assets (tiny models + synthetic data) built once per session."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # train.py / inference.py live at the repo root
FIXTURES = REPO_ROOT / "tests" / "fixtures"  # real files written by others; see PROVENANCE.md there
REFERENCE_HELP = (
    "the original AffectGPT reference outputs (affectgpt_reference/, 80 MB) are not in this checkout: "
    "set AFFECTGPT_REFERENCE to that folder (it comes with the project's shared fixtures, "
    "../shared/fixtures/affectgpt_reference beside the repository)"
)


def reference_root() -> Path | None:
    """The original AffectGPT's reference outputs, or None when this machine does not have them."""
    import os

    for candidate in (os.environ.get("AFFECTGPT_REFERENCE"), REPO_ROOT.parent / "shared" / "fixtures" / "affectgpt_reference"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def affectgpt_reference() -> Path:
    root = reference_root()
    if root is None:
        pytest.skip(REFERENCE_HELP)
    return root


@pytest.fixture(scope="session")
def demo_assets(tmp_path_factory) -> Path:
    """A small demo build (48 train / 12 test clips) in the real on-disk formats."""
    from my_affectgpt.demo_assets import build_demo_assets

    root = tmp_path_factory.mktemp("demo_assets")
    build_demo_assets(root, n_train=48, n_test=12, seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_encoders(tmp_path_factory) -> tuple[Path, Path]:
    """Tiny CLIP vision (16-wide features) and HuBERT (32-wide) folders, for raw-media encoding."""
    from my_affectgpt.common.tiny_models import build_tiny_clip_vision, build_tiny_hubert

    root = tmp_path_factory.mktemp("tiny_encoders")
    return build_tiny_clip_vision(root / "clip", projection_dim=16), build_tiny_hubert(root / "hubert", hidden_size=32)


def demo_config(assets: Path, output_dir: Path, shipped: str = "train_configs/demo.yaml") -> dict:
    """A shipped demo config as a dict, with its ``demo_assets/`` paths moved to ``assets``."""
    text = (REPO_ROOT / shipped).read_text()
    cfg = OmegaConf.to_container(OmegaConf.create(text.replace("demo_assets/", f"{assets}/")))
    cfg["run"]["output_dir"] = str(output_dir)
    if "inference" in cfg:
        cfg["inference"]["ckpt_root"] = str(output_dir)
    return cfg


def write_config(cfg: dict, path: Path) -> Path:
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    return path
