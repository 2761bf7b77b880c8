"""Batched encoding of decoded samples with the frozen encoders the model uses.

The inputs of a batch of samples go through the encoders together (frames and faces through
the CLIP visual encoder, after CLIP normalisation here, audio clips through HuBERT, AU texts
through the AU CLIP text tower) and are split back per sample. When a batch raises, its
samples are encoded one at a time so that only the sample that breaks the encoder fails.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from my_affectgpt.common.errors import UserError
from my_affectgpt.extraction.decode import is_worker_crash
from my_affectgpt.processors.media import clip_normalize

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
    """The encoders ``modalities`` need, loaded once, on ``spec.device``.

    An encoder step over a batch of samples runs in forward passes of at most
    ``encoder.batch_size`` rows (frames or audio clips), each pass taking whole samples. On
    an accelerator that is the whole batch, one pass per modality. On the CPU it stays the
    encoder's own chunk (CLIP 32 frames, HuBERT 16 clips): a pass over a whole batch there
    allocates activations of tens of MB afresh every time (beyond what malloc keeps for
    reuse) and was slower per sample than one sample at a time.
    """

    def __init__(self, spec: EncoderSpec, modalities: Sequence[str], samples_per_call: int,
                 rows_per_sample: Dict[str, int]):
        import torch

        from my_affectgpt.models.encoders import build_encoder

        whole_batch = torch.device(spec.device).type != "cpu"

        def load(name: str, path: str, flag: str, rows: int):
            encoder = build_encoder(name, _required(path, flag), spec.device, spec.dtype)
            if whole_batch:
                encoder.batch_size = samples_per_call * rows
            return encoder

        self.visual = self.acoustic = self.au_text = None
        if {"frame", "face"} & set(modalities):
            self.visual = load(spec.visual_encoder, spec.visual_encoder_path, "--visual_encoder_path",
                               rows_per_sample["frame"])
        if "audio" in modalities:
            self.acoustic = load(spec.acoustic_encoder, spec.acoustic_encoder_path, "--acoustic_encoder_path",
                                 rows_per_sample["audio"])
        if "au" in modalities:
            from my_affectgpt.models.au_clip import AUClipTextEncoder

            self.au_text = AUClipTextEncoder(spec.au_clip_model, spec.au_clip_pretrained, device=spec.device)

    def _encode_group(self, modality: str, inputs: List) -> List[np.ndarray]:
        import torch

        if modality == "au":
            from my_affectgpt.extraction.au import encode_text_groups

            return encode_text_groups(self.au_text, inputs)
        encoder = self.acoustic if modality == "audio" else self.visual
        # Frames and faces arrive as uint8 RGB and are normalised per pass, where they are encoded.
        prepare = (lambda x: x) if modality == "audio" else clip_normalize
        rows = [len(x) for x in inputs]
        features = [
            encoder(prepare(torch.cat([torch.as_tensor(x) for x in inputs[part]]))).cpu().numpy()
            for part in whole_sample_passes(rows, encoder.batch_size)
        ]
        return list(np.split(np.concatenate(features), np.cumsum(rows)[:-1]))

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


def whole_sample_passes(rows: Sequence[int], max_rows: int) -> List[slice]:
    """Consecutive runs of samples with at most ``max_rows`` rows together; a sample with
    more rows than that is a run of its own (the encoder splits it further)."""
    passes, start, total = [], 0, 0
    for i, n in enumerate(rows):
        if i > start and total + n > max_rows:
            passes.append(slice(start, i))
            start, total = i, 0
        total += n
    passes.append(slice(start, len(rows)))
    return passes


def _required(path: str, flag: str) -> str:
    if not path:
        raise UserError(f"{flag} is required for this modality: a local model directory (or hub id)")
    return path
