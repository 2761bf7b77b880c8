"""Loading a sample's AU channel in the mode the config decided (``Config.au_modes``).

- ``preextracted``: ``{preextracted_root}/au_CLIP_VITB32_8frms/{name}.npy`` -> ``au`` [N, 512]
- ``realtime``: the JSON's ``summary_description`` texts -> ``au_texts`` (the model CLIP-encodes them)
- ``agent``: per-frame AU values of the chosen frames -> ``au_agent_frames`` (the AU Agent writes text)
- ``None``: the AU block is off.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

from my_affectgpt.datasets.errors import BadSampleError
from my_affectgpt.datasets.features import AU_FEATURE_FOLDER, expected_width, load_feature_npy
from my_affectgpt.processors.au_json import AUJsonError, AUJsonNotFoundError
from my_affectgpt.processors.openface_csv import OpenFaceCSVError
from my_affectgpt.processors.raw_media import load_sample_analysis


class AUSource:
    def __init__(self, mode: Optional[str], ds_cfg, model_cfg, locator=None):
        self.mode = mode
        self.cfg = ds_cfg
        self.model_cfg = model_cfg
        self.locator = locator  # AUJsonLocator of the dataset, None without mer_factory_output

    def load(self, name: str) -> Dict:
        if self.mode == "preextracted":
            path = Path(self.cfg.preextracted_root) / AU_FEATURE_FOLDER / f"{name}.npy"
            return {"au": load_feature_npy(name, path, None, *expected_width(self.model_cfg, "au"))}
        analysis = self.analysis(name)
        if self.mode == "realtime":
            texts = analysis.summary_texts
            if not texts:
                self._missing_descriptions(name)
            return {"au_texts": texts}
        return {"au_agent_frames": self._agent_frames(name, analysis)}

    def analysis(self, name: str):
        """The sample's parsed AU JSON (completed from its OpenFace CSV)."""
        try:
            return load_sample_analysis(self.locator, name)
        except AUJsonNotFoundError:
            raise BadSampleError(
                name, self.locator.path(name), "AU JSON not found; check mer_factory_output and the dataset folder name"
            ) from None
        except (AUJsonError, OpenFaceCSVError) as exc:
            raise BadSampleError(name, self.locator.path(name), str(exc)) from None

    def _missing_descriptions(self, name: str) -> None:
        policy = self.cfg.au_missing_description
        if policy == "empty":
            return
        raise BadSampleError(
            name,
            self.locator.path(name),
            "the AU JSON has no summary_description; run scripts/generate_au_descriptions.py, or set "
            "au_missing_description: empty (AU channel left empty) or skip",
            skip=policy == "skip",
        )

    def _agent_frames(self, name, analysis):
        frames = [f for f in analysis.frames if f.active_aus]
        if not frames:
            self._missing_descriptions(name)
            return []
        peaks = [analysis.frames[p] for p in analysis.peak_positions if analysis.frames[p].active_aus]
        chosen = peaks[: self.model_cfg.au_agent_num_frames] or frames[: self.model_cfg.au_agent_num_frames]
        return [
            {"frame": f.frame, "active_aus": dict(f.active_aus), "au_description": f.au_description} for f in chosen
        ]
