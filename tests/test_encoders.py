"""Frozen CLIP / HuBERT encoders, loaded from tiny local checkpoints."""
import numpy as np
import pytest
import torch
from torch import nn

from helpers_tiny_encoders import make_tiny_clip, make_tiny_clip_vision, make_tiny_hubert, write_synthetic_clip
from my_affectgpt.common.registry import registry
from my_affectgpt.models.encoders import (
    ClipVisualEncoder,
    EncoderLoadError,
    HubertAudioEncoder,
    build_encoder,
)
from my_affectgpt.processors.media import clip_normalize, read_audio, read_video_frames, split_audio_clips


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    return {
        "clip": make_tiny_clip(root / "clip", projection_dim=24),
        "hubert": make_tiny_hubert(root / "hubert", hidden_size=32),
        "hubert_norm": make_tiny_hubert(root / "hubert_norm", hidden_size=32, do_normalize=True),
    }


@pytest.fixture(scope="module")
def clip_encoder(model_dirs):
    return build_encoder("CLIP_VIT_LARGE", str(model_dirs["clip"]))


@pytest.fixture(scope="module")
def hubert_encoder(model_dirs):
    return build_encoder("HUBERT_LARGE", str(model_dirs["hubert"]))


def _pixels(n, seed=0):
    return torch.randn(n, 3, 224, 224, generator=torch.Generator().manual_seed(seed))


def _waves(n, seed=0):
    return torch.randn(n, 32000, generator=torch.Generator().manual_seed(seed)) * 0.1


def test_registry_names_map_to_encoder_classes(clip_encoder, hubert_encoder):
    assert registry.get_encoder_class("CLIP_VIT_LARGE") is ClipVisualEncoder
    assert registry.get_encoder_class("HUBERT_LARGE") is HubertAudioEncoder
    assert isinstance(clip_encoder, ClipVisualEncoder) and isinstance(hubert_encoder, HubertAudioEncoder)


def test_clip_shapes_for_flat_and_per_video_batches(clip_encoder):
    assert clip_encoder.out_dim == 24
    assert clip_encoder(_pixels(3)).shape == (3, 24)
    per_video = _pixels(8).view(2, 4, 3, 224, 224)
    features = clip_encoder(per_video)
    assert features.shape == (8, 24) and features.dtype == torch.float32


def test_clip_features_equal_get_image_features(model_dirs, clip_encoder):
    from transformers import CLIPModel

    reference = CLIPModel.from_pretrained(str(model_dirs["clip"])).eval()
    pixels = _pixels(2)
    with torch.no_grad():
        expected = reference.get_image_features(pixel_values=pixels).pooler_output
    torch.testing.assert_close(clip_encoder(pixels), expected)


def test_vision_only_checkpoint_with_projection_loads(tmp_path):
    path = make_tiny_clip_vision(tmp_path / "vision", with_projection=True, projection_dim=16)
    encoder = ClipVisualEncoder(str(path))
    assert encoder(_pixels(2)).shape == (2, 16)


def test_checkpoint_without_projection_is_refused(tmp_path):
    path = make_tiny_clip_vision(tmp_path / "no_proj", with_projection=False)
    with pytest.raises(EncoderLoadError, match="visual_projection"):
        ClipVisualEncoder(str(path))


def test_wrong_or_missing_checkpoints_name_the_path_and_key(tmp_path, model_dirs):
    with pytest.raises(EncoderLoadError, match="not CLIP"):
        ClipVisualEncoder(str(model_dirs["hubert"]))
    with pytest.raises(EncoderLoadError, match="model.visual_encoder_path"):
        ClipVisualEncoder(str(tmp_path / "nowhere"))
    with pytest.raises(EncoderLoadError, match="model.acoustic_encoder_path"):
        HubertAudioEncoder(str(tmp_path / "nowhere"))


def test_hubert_shapes(hubert_encoder):
    assert hubert_encoder.out_dim == 32
    features = hubert_encoder(_waves(8))
    assert features.shape == (8, 32) and features.dtype == torch.float32


def test_hubert_is_mean_of_last_four_layers_over_time(model_dirs, hubert_encoder):
    from transformers import HubertModel

    reference = HubertModel.from_pretrained(str(model_dirs["hubert"])).eval()
    waves = _waves(2)
    with torch.no_grad():
        hidden = reference(waves, output_hidden_states=True).hidden_states
    assert len(hidden) == 5  # embeddings + 4 layers
    expected = torch.stack(hidden[-4:]).mean(0).mean(1)
    torch.testing.assert_close(hubert_encoder(waves), expected)


def test_hubert_normalises_input_like_the_checkpoints_feature_extractor(model_dirs, hubert_encoder):
    from transformers import Wav2Vec2FeatureExtractor

    normalising = HubertAudioEncoder(str(model_dirs["hubert_norm"]))  # same seed: same weights
    assert normalising.normalize_input and not hubert_encoder.normalize_input
    waves = _waves(2) * 3 + 0.2
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(model_dirs["hubert_norm"]))
    prepared = extractor(list(waves.numpy()), sampling_rate=16000, return_tensors="pt").input_values
    assert not torch.allclose(prepared, waves)
    torch.testing.assert_close(normalising(waves), hubert_encoder(prepared), atol=1e-4, rtol=1e-4)


class _Parent(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, 2)


@pytest.mark.parametrize("which", ["clip_encoder", "hubert_encoder"])
def test_encoders_stay_frozen_and_in_eval_mode(request, which):
    encoder = request.getfixturevalue(which)
    parent = _Parent(encoder).train()
    assert parent.training and parent.head.training
    assert not any(module.training for module in encoder.modules())
    assert not any(param.requires_grad for param in encoder.parameters())
    inputs = _pixels(1) if which == "clip_encoder" else _waves(1)
    features = encoder(inputs.requires_grad_(True))
    assert not features.requires_grad
    parent.head(features).sum().backward()  # features feed trainable modules
    assert parent.head.weight.grad is not None


@pytest.mark.parametrize("which", ["clip_encoder", "hubert_encoder"])
def test_outputs_are_deterministic_and_batch_invariant(request, which):
    encoder = request.getfixturevalue(which)
    inputs = _pixels(4) if which == "clip_encoder" else _waves(4)
    batched = encoder(inputs)
    torch.testing.assert_close(encoder(inputs), batched, atol=0, rtol=0)
    singles = torch.cat([encoder(inputs[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(singles, batched, atol=1e-5, rtol=1e-4)


def test_chunking_does_not_change_features(model_dirs):
    encoder = HubertAudioEncoder(str(model_dirs["hubert"]), batch_size=3)
    whole = HubertAudioEncoder(str(model_dirs["hubert"]), batch_size=64)
    waves = _waves(7)
    torch.testing.assert_close(encoder(waves), whole(waves), atol=1e-5, rtol=1e-4)


def test_build_encoder_dtype_gives_float32_features(model_dirs, clip_encoder):
    half = build_encoder("CLIP_VIT_LARGE", str(model_dirs["clip"]), device="cpu", dtype="bf16")
    assert next(half.parameters()).dtype == torch.bfloat16
    pixels = _pixels(2)
    features = half(pixels)
    assert features.dtype == torch.float32
    torch.testing.assert_close(features, clip_encoder(pixels), atol=0.1, rtol=0.1)
    with pytest.raises(ValueError, match="unknown dtype"):
        build_encoder("CLIP_VIT_LARGE", str(model_dirs["clip"]), dtype="fp8")


def test_build_encoder_uses_the_given_registry(model_dirs):
    child = registry.child()
    child.register_encoder("MY_CLIP")(ClipVisualEncoder)
    assert isinstance(build_encoder("MY_CLIP", str(model_dirs["clip"]), reg=child), ClipVisualEncoder)


def test_media_to_features_per_modality(tmp_path, clip_encoder, hubert_encoder):
    clip = write_synthetic_clip(tmp_path / "sample.mp4", audio_seconds=3.0)
    frames = read_video_frames(clip, lambda n, fps: np.linspace(0, n - 1, 8).round().astype(int)).frames
    assert clip_encoder(clip_normalize(frames)).shape == (8, 24)
    wave, _ = read_audio(clip)
    clips = torch.from_numpy(split_audio_clips(wave))
    assert hubert_encoder(clips).shape == (8, 32)
