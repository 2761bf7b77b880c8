"""Where a sample's AU channel comes from (SPEC 4.3) and loading it.

Modes:
- ``preextracted``: ``{preextracted_root}/au_CLIP_VITB32_8frms/{name}.npy`` -> ``au`` [N, 512]
- ``realtime``: the JSON's ``summary_description`` texts -> ``au_texts`` (the model CLIP-encodes them)
- ``agent``: per-frame AU values of the chosen frames -> ``au_agent_frames`` (the AU Agent writes text)
- ``None``: the AU channel is off.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional

from my_affectgpt.datasets.errors import BadSampleError
from my_affectgpt.datasets.features import AU_FEATURE_FOLDER, expected_width, load_feature_npy

logger = logging.getLogger("my_affectgpt")



def resolve_au_mode(ds_cfg, model_cfg, realtime: bool = False) -> Optional[str]:
    """The AU mode of a dataset block; errors when the channel is asked for but has no source.

    ``use_au: None`` (the default) turns the channel on when its source is configured: the AU
    feature folder for pre-extracted mode, ``mer_factory_output`` for the JSON-based modes.
    """
    if ds_cfg.use_au is False:
        return None
    if model_cfg.use_au_agent:
        mode, source = "agent", ds_cfg.mer_factory_output
    elif realtime or ds_cfg.use_au_clip_realtime:
        mode, source = "realtime", ds_cfg.mer_factory_output
    else:
        folder = Path(ds_cfg.preextracted_root) / AU_FEATURE_FOLDER if ds_cfg.preextracted_root else None
        mode, source = "preextracted", str(folder) if folder and folder.is_dir() else ""
    if source:
        return mode
    if ds_cfg.use_au:
        need = "mer_factory_output" if mode != "preextracted" else f"preextracted_root with an {AU_FEATURE_FOLDER}/ folder"
        raise ValueError(f"use_au is True but the AU channel ({mode} mode) has no source: set {need}")
    return None


class AUSource:
    def __init__(self, ds_cfg, model_cfg, dataset_folder: str, realtime: bool = False):
        self.cfg = ds_cfg
        self.model_cfg = model_cfg
        self.mode = resolve_au_mode(ds_cfg, model_cfg, realtime)
        self.locator = None
        if ds_cfg.mer_factory_output:
            from my_affectgpt.processors.au_json import AUJsonLocator

            self.locator = AUJsonLocator(ds_cfg.mer_factory_output, dataset_folder)

    def load(self, name: str) -> Dict:
        if self.mode == "preextracted":
            path = Path(self.cfg.preextracted_root) / AU_FEATURE_FOLDER / f"{name}.npy"
            return {"au": load_feature_npy(name, path, None, *expected_width(self.model_cfg, "au"))}
        analysis = self.analysis(name, required=True)
        if self.mode == "realtime":
            texts = analysis.summary_texts
            if not texts:
                self._missing_descriptions(name, BadSampleError)
            return {"au_texts": texts}
        return {"au_agent_frames": self._agent_frames(name, analysis, BadSampleError)}

    def analysis(self, name: str, required: bool):
        """The sample's parsed AU JSON (``None`` when not configured and not ``required``)."""
        from my_affectgpt.processors.au_json import AUJsonError
        from my_affectgpt.processors.openface_csv import OpenFaceCSVError, load_au_analysis_with_csv

        if self.locator is None:
            return None
        path = self.locator.path(name)
        if not path.is_file():
            if not required:
                return None
            raise BadSampleError(name, path, "AU JSON not found; check mer_factory_output and the dataset folder name")
        try:
            return load_au_analysis_with_csv(path)
        except (AUJsonError, OpenFaceCSVError) as exc:
            raise BadSampleError(name, path, str(exc)) from None

    def analysis_for_sampling(self, name: str):
        return self.analysis(name, required=False) if self.cfg.frame_sampling == "emotion_peak" else None

    def _missing_descriptions(self, name, error_cls):
        policy = self.cfg.au_missing_description
        if policy == "empty":
            return
        raise error_cls(
            name,
            self.locator.path(name),
            "the AU JSON has no summary_description; run scripts/generate_au_descriptions.py, or set "
            "au_missing_description: empty (AU channel left empty) or skip",
            skip=policy == "skip",
        )

    def _agent_frames(self, name, analysis, error_cls):
        frames = [f for f in analysis.frames if f.active_aus]
        if not frames:
            self._missing_descriptions(name, error_cls)
            return []
        peaks = [analysis.frames[p] for p in analysis.peak_positions if analysis.frames[p].active_aus]
        chosen = peaks[: self.model_cfg.au_agent_num_frames] or frames[: self.model_cfg.au_agent_num_frames]
        return [
            {"frame": f.frame, "active_aus": dict(f.active_aus), "au_description": f.au_description} for f in chosen
        ]
