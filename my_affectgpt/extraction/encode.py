"""Batched encoding of decoded samples with the frozen encoders the model uses.

Inputs of several samples are concatenated into one encoder call per modality (frames and
faces through the CLIP visual encoder, audio clips through HuBERT, AU texts through the AU
CLIP text tower) and split back per sample. When a batch call raises, its samples are
encoded one at a time so that only the sample that breaks the encoder fails.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from my_affectgpt.extraction.decode import is_worker_crash

logger = logging.getLogger("my_affectgpt")


@dataclass(frozen=True)
class EncoderSpec:
    visual_encoder: str
    visual_encoder_path: str
    acoustic_encoder: str
    acoustic_encoder_path: str
    au_clip_model: str
    au_clip_pretrained: str
    device: str
    dtype: str = "fp32"


class FeatureEncoders:
    """The encoders ``modalities`` need, loaded once, on ``spec.device``."""

    def __init__(self, spec: EncoderSpec, modalities: Sequence[str], samples_per_call: int,
                 rows_per_sample: Dict[str, int]):
        from my_affectgpt.models.encoders import build_encoder

        self.visual = self.acoustic = self.au_text = None
        if {"frame", "face"} & set(modalities):
            self.visual = build_encoder(
                spec.visual_encoder, _required(spec.visual_encoder_path, "--visual_encoder_path"),
                spec.device, spec.dtype,
            )
            self.visual.batch_size = samples_per_call * rows_per_sample["frame"]
        if "audio" in modalities:
            self.acoustic = build_encoder(
                spec.acoustic_encoder, _required(spec.acoustic_encoder_path, "--acoustic_encoder_path"),
                spec.device, spec.dtype,
            )
            self.acoustic.batch_size = samples_per_call * rows_per_sample["audio"]
        if "au" in modalities:
            from my_affectgpt.models.au_clip import AUClipTextEncoder

            self.au_text = AUClipTextEncoder(spec.au_clip_model, spec.au_clip_pretrained, device=spec.device)

    def _encode_group(self, modality: str, inputs: List) -> List[np.ndarray]:
        import torch

        if modality == "au":
            from my_affectgpt.extraction.au import encode_text_groups

            return encode_text_groups(self.au_text, inputs)
        encoder = self.acoustic if modality == "audio" else self.visual
        rows = [len(x) for x in inputs]
        stacked = torch.cat([torch.as_tensor(x) for x in inputs])
        features = encoder(stacked).cpu().numpy()
        return list(np.split(features, np.cumsum(rows)[:-1]))

    def encode(self, modality: str, inputs: List) -> List[Tuple[Optional[np.ndarray], Optional[str]]]:
        """``(features, None)`` or ``(None, reason)`` per input, in order."""
        try:
            features = self._encode_group(modality, inputs)
        except Exception as err:  # noqa: BLE001 - retried one by one below
            if is_worker_crash(err):  # not the encoder's fault; the runner handles it
                raise
            if len(inputs) == 1:
                return [(None, f"{modality} encoder failed: {type(err).__name__}: {err}")]
            logger.warning("%s encoder failed on a batch of %d (%s); encoding them one at a time",
                           modality, len(inputs), err)
            return [self.encode(modality, [x])[0] for x in inputs]
        return [(feats, None) if np.isfinite(feats).all() else (None, f"{modality} features contain NaN or inf")
                for feats in features]


def _required(path: str, flag: str) -> str:
    if not path:
        raise ValueError(f"{flag} is required for this modality: a local model directory (or hub id)")
    return path
