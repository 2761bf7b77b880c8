"""Tiny, seeded CLIP and HuBERT checkpoints written as ordinary model directories.

The encoder tests load them with the same ``from_pretrained(path)`` code production uses.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch

TINY_CLIP_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      vocab_size=128, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1)
TINY_CLIP_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                        image_size=224, patch_size=32)


def make_tiny_clip(out_dir: Path, projection_dim: int = 24, seed: int = 0) -> Path:
    """A full ``CLIPModel`` checkpoint (the layout of openai/clip-vit-large-patch14).

    Like the real config, only the top level states ``projection_dim``.
    """
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(text_config=TINY_CLIP_TEXT, vision_config=TINY_CLIP_VISION, projection_dim=projection_dim)
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(str(out_dir))
    return Path(out_dir)


def make_tiny_clip_vision(out_dir: Path, with_projection: bool, projection_dim: int = 24, seed: int = 0) -> Path:
    """A vision-only CLIP checkpoint, with or without the image projection."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(projection_dim=projection_dim, **TINY_CLIP_VISION)
    model_cls = CLIPVisionModelWithProjection if with_projection else CLIPVisionModel
    torch.manual_seed(seed)
    model_cls(config).save_pretrained(str(out_dir))
    return Path(out_dir)


def make_tiny_hubert(out_dir: Path, hidden_size: int = 32, do_normalize: Optional[bool] = None, seed: int = 0) -> Path:
    """A tiny ``HubertModel`` (4 layers); ``do_normalize`` writes a preprocessor config too."""
    from transformers import HubertConfig, HubertModel

    config = HubertConfig(
        hidden_size=hidden_size,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    torch.manual_seed(seed)
    HubertModel(config).save_pretrained(str(out_dir))
    if do_normalize is not None:
        preprocessor = {
            "feature_extractor_type": "Wav2Vec2FeatureExtractor",
            "do_normalize": do_normalize,
            "feature_size": 1,
            "padding_side": "right",
            "padding_value": 0.0,
            "return_attention_mask": False,
            "sampling_rate": 16000,
        }
        (Path(out_dir) / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return Path(out_dir)


# Solid frame colours of the synthetic clip, cycled frame by frame (RGB).
CLIP_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))


def write_synthetic_clip(
    path: Path,
    n_frames: int = 12,
    fps: int = 6,
    size=(96, 64),
    audio_seconds: Optional[float] = 2.0,
    tone_hz: float = 440.0,
    audio_rate: int = 44100,
) -> Path:
    """An mp4 written with PyAV: solid ``CLIP_COLOURS`` frames and, unless
    ``audio_seconds`` is None, a stereo AAC sine tone (both channels equal, amplitude 0.5)."""
    import av
    import numpy as np

    width, height = size
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = None
        if audio_seconds is not None:
            audio = container.add_stream("aac", rate=audio_rate, layout="stereo")
        for i in range(n_frames):
            image = np.zeros((height, width, 3), np.uint8)
            image[:] = CLIP_COLOURS[i % len(CLIP_COLOURS)]
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio is not None:
            t = np.arange(int(audio_seconds * audio_rate)) / audio_rate
            tone = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
            frame.sample_rate = audio_rate
            for packet in audio.encode(frame):
                container.mux(packet)
            for packet in audio.encode(None):
                container.mux(packet)
    return Path(path)
