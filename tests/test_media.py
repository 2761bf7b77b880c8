"""Raw media decoding: paths, video frames, face crops, audio, clips and CLIP normalisation."""
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers_tiny_encoders import CLIP_COLOURS, write_synthetic_clip
from my_affectgpt.processors.media import (
    CLIP_MEAN,
    CLIP_STD,
    MediaError,
    MediaNotFoundError,
    NoAudioStreamError,
    clip_normalize,
    load_face_crops,
    read_audio,
    read_video_frames,
    resolve_media_path,
    split_audio_clips,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MEGAMIND = FIXTURES / "media" / "Megamind.avi"


def every_other(num_frames, fps):
    return list(range(0, num_frames, 2))


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    return write_synthetic_clip(tmp_path_factory.mktemp("media") / "clip.mp4")


# resolve_media_path -----------------------------------------------------------------------

def test_resolve_picks_first_existing_extension_in_order(tmp_path):
    (tmp_path / "s1.avi").write_bytes(b"x")
    (tmp_path / "s1.mkv").write_bytes(b"x")
    assert resolve_media_path(tmp_path, "s1") == tmp_path / "s1.avi"
    assert resolve_media_path(tmp_path, "s1.mkv") == tmp_path / "s1.mkv"
    (tmp_path / "s1.wav").write_bytes(b"x")
    assert resolve_media_path(tmp_path, "s1", exts=(".wav", ".flac")) == tmp_path / "s1.wav"


def test_resolve_missing_lists_every_path_tried(tmp_path):
    with pytest.raises(MediaNotFoundError) as info:
        resolve_media_path(tmp_path, "nope")
    assert isinstance(info.value, FileNotFoundError)
    for ext in (".mp4", ".avi", ".mkv", ".mov", ".webm"):
        assert str(tmp_path / f"nope{ext}") in str(info.value)


@pytest.mark.parametrize("name", ["../secret", "a/b", "a\\b", "", ".."])
def test_resolve_rejects_unsafe_names(tmp_path, name):
    with pytest.raises(ValueError, match="sample name"):
        resolve_media_path(tmp_path, name)
    with pytest.raises(ValueError, match="sample name"):
        load_face_crops(tmp_path, name, every_other)


# video --------------------------------------------------------------------------------------

def test_synthetic_video_decodes_sampled_frames_at_224(clip_path):
    video = read_video_frames(clip_path, every_other)
    assert video.frames.shape == (6, 224, 224, 3) and video.frames.dtype == np.uint8
    assert video.num_frames == 12 and video.fps == pytest.approx(6.0)
    assert video.indices.tolist() == [0, 2, 4, 6, 8, 10]
    centre = video.frames[:, 112, 112].astype(int)
    expected = np.array([CLIP_COLOURS[i % len(CLIP_COLOURS)] for i in video.indices])
    assert np.abs(centre - expected).max() < 12  # lossy codec, solid colours survive


def test_sampler_receives_frame_count_and_fps(clip_path):
    seen = []
    read_video_frames(clip_path, lambda n, fps: seen.append((n, fps)) or [0], size=32)
    assert seen == [(12, pytest.approx(6.0))]


def test_frame_count_uses_uniform_sampler(clip_path):
    video = read_video_frames(clip_path, 8)
    assert video.frames.shape == (8, 224, 224, 3)


def test_out_of_range_sampler_indices_are_rejected(clip_path):
    with pytest.raises(ValueError, match="within"):
        read_video_frames(clip_path, lambda n, fps: [n])


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 500])
def test_corrupt_video_raises_media_error_naming_it(tmp_path, content):
    bad = tmp_path / "broken_sample.mp4"
    bad.write_bytes(content)
    with pytest.raises(MediaError, match="broken_sample.mp4"):
        read_video_frames(bad, every_other)


def test_truncated_mp4_raises_media_error(tmp_path, clip_path):
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(clip_path.read_bytes()[:2000])
    with pytest.raises(MediaError, match="truncated.mp4"):
        read_video_frames(bad, every_other)


def test_missing_video_is_not_found(tmp_path):
    with pytest.raises(MediaNotFoundError, match="absent.mp4"):
        read_video_frames(tmp_path / "absent.mp4", every_other)


# face crops ---------------------------------------------------------------------------------

def _crops(n=5, size=112):
    return np.stack([np.full((size, size, 3), 40 * i, np.uint8) for i in range(n)])


def test_face_crops_from_npy_are_sampled_and_resized(tmp_path):
    (tmp_path / "s1").mkdir()
    np.save(tmp_path / "s1" / "s1.npy", _crops())
    faces = load_face_crops(tmp_path, "s1", lambda n, fps: [0, 2, 4] if fps is None else [])
    assert faces.shape == (3, 224, 224, 3) and faces.dtype == np.uint8
    assert faces[:, 0, 0, 0].tolist() == [0, 80, 160]


def test_face_crops_from_image_folder_in_name_order(tmp_path):
    from PIL import Image

    folder = tmp_path / "s2"
    folder.mkdir()
    for i, crop in enumerate(_crops(4, size=64)):
        Image.fromarray(crop).save(folder / f"frame_{i:04d}.png")
    faces = load_face_crops(tmp_path, "s2", lambda n, fps: list(range(n)))
    assert faces.shape == (4, 224, 224, 3)
    assert faces[:, 5, 5, 1].tolist() == [0, 40, 80, 120]


def test_face_crops_with_wrong_layout_are_rejected(tmp_path):
    (tmp_path / "s3").mkdir()
    np.save(tmp_path / "s3" / "s3.npy", _crops().astype(np.float32))
    with pytest.raises(MediaError, match="s3.npy"):
        load_face_crops(tmp_path, "s3", every_other)


def test_missing_face_crops_name_both_locations(tmp_path):
    with pytest.raises(MediaNotFoundError, match="s4.npy"):
        load_face_crops(tmp_path, "s4", every_other)


# audio --------------------------------------------------------------------------------------

def test_synthetic_audio_decodes_to_mono_16k(clip_path):
    wave, info = read_audio(clip_path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert info.sample_rate == 16000 and info.source_sample_rate == 44100 and info.source_channels == 2
    assert len(wave) / 16000 == pytest.approx(2.0, abs=0.1)
    assert info.dropped_packets == 0
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.argmax(spectrum) * 16000 / len(wave) == pytest.approx(440, abs=5)
    # Both channels carry the 0.5-amplitude tone: their mean keeps it (a summing downmix would not).
    assert np.abs(wave).max() == pytest.approx(0.5, abs=0.05)


def test_video_without_audio_stream_raises(tmp_path):
    silent = write_synthetic_clip(tmp_path / "silent_clip.mp4", audio_seconds=None)
    with pytest.raises(NoAudioStreamError, match="silent_clip.mp4"):
        read_audio(silent)


def test_garbage_audio_file_raises_media_error(tmp_path):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF" + b"\x13" * 300)
    with pytest.raises(MediaError, match="noise.wav"):
        read_audio(bad)


def test_megamind_ac3_with_bad_packets_decodes_whole_track():
    wave, info = read_audio(MEGAMIND)
    assert info.codec == "ac3" and info.source_sample_rate == 48000
    assert info.dropped_packets >= 1
    assert info.dropped_packets < 0.05 * info.packets
    assert len(wave) / 16000 == pytest.approx(11.2, abs=0.3)
    assert np.isfinite(wave).all() and np.abs(wave).max() > 0.01


def test_megamind_video_frames():
    video = read_video_frames(MEGAMIND, lambda n, fps: np.linspace(0, n - 1, 8).round().astype(int))
    assert video.frames.shape == (8, 224, 224, 3)
    assert video.fps == pytest.approx(23.976, abs=0.01)


# clips --------------------------------------------------------------------------------------

def test_clips_span_the_audio_evenly():
    sr = 10
    wave = np.arange(200, dtype=np.float32)  # 20 s at 10 Hz, value = sample index
    clips = split_audio_clips(wave, clips_per_video=5, clip_seconds=2.0, sr=sr)
    assert clips.shape == (5, 20) and clips.dtype == np.float32
    assert clips[:, 0].tolist() == [0, 45, 90, 135, 180]
    assert clips[-1, -1] == 199


def test_clips_of_exact_length_tile_without_overlap():
    wave = np.arange(16 * 16000, dtype=np.float32)
    clips = split_audio_clips(wave)
    assert clips.shape == (8, 32000)
    np.testing.assert_array_equal(clips.reshape(-1), wave)


def test_short_audio_is_zero_padded():
    wave = np.ones(8000, dtype=np.float32)  # 0.5 s
    clips = split_audio_clips(wave)
    assert clips.shape == (8, 32000)
    assert (clips[:, :8000] == 1).all() and (clips[:, 8000:] == 0).all()


def test_empty_or_multichannel_wave_is_rejected():
    with pytest.raises(ValueError):
        split_audio_clips(np.zeros(0, np.float32))
    with pytest.raises(ValueError):
        split_audio_clips(np.zeros((2, 100), np.float32))


# CLIP normalisation -------------------------------------------------------------------------

def test_clip_normalize_layout_and_statistics():
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 255, 0, 128
    pixels = clip_normalize(frames)
    assert pixels.shape == (2, 3, 4, 4) and pixels.dtype == torch.float32
    for channel, value in enumerate((255, 0, 128)):
        expected = (value / 255 - CLIP_MEAN[channel]) / CLIP_STD[channel]
        assert torch.allclose(pixels[:, channel], torch.full((2, 4, 4), expected), atol=1e-5)


def test_clip_normalize_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        clip_normalize(np.zeros((1, 4, 4, 3), np.float32))


class _DecoderThreadsSeen:
    def __len__(self):
        return 1

    def __getitem__(self, index):
        from my_affectgpt.processors.media import _decoder_threads

        return _decoder_threads()


def test_video_decoding_is_single_threaded_inside_dataloader_workers():
    """N workers each starting a decoder thread per core would oversubscribe the CPU N times."""
    from torch.utils.data import DataLoader

    from my_affectgpt.processors.media import _decoder_threads

    assert _decoder_threads() == 0  # main process: one thread per core, ffmpeg's choice
    assert list(DataLoader(_DecoderThreadsSeen(), batch_size=None, num_workers=1)) == [1]
