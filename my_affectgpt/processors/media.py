"""Raw media decoding: video frames, face crops and audio, as arrays ready for the encoders.

Every decoding failure is a :class:`MediaError` (a ``ValueError``) that names the file, so a
caller can report the sample and skip it under an explicit policy; nothing is replaced by
silent zeros. decord, PyAV, PIL and torch are imported inside the functions that use them.

Frame choice is pluggable: the ``sampler`` argument of :func:`read_video_frames` and
:func:`load_face_crops` is either a frame count (uniform sampling through
``my_affectgpt.processors.frame_sampling.uniform_indices``) or a callable
``(num_frames, fps) -> indices``; ``fps`` is ``None`` for face crops, which carry no clock.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np

from my_affectgpt.common.errors import UserError
from my_affectgpt.common.sample_names import check_sample_name

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm")
AUDIO_EXTS = (".wav", ".flac")
IMAGE_EXTS = (".bmp", ".jpg", ".jpeg", ".png")

# CLIP's image normalisation (the statistics OpenAI's CLIP was trained with).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

IndexFn = Callable[[int, Optional[float]], Sequence[int]]
FrameSelection = Union[int, IndexFn]


class MediaError(UserError, ValueError):
    """A media file is missing, unreadable or unusable; the message names the file."""


class MediaNotFoundError(MediaError, FileNotFoundError):
    """No media file exists where one was expected; the message lists the paths tried."""


class NoAudioStreamError(MediaError):
    """The file decodes but has no audio stream."""


def resolve_media_path(root, name: str, exts: Sequence[str] = VIDEO_EXTS) -> Path:
    """The first existing ``{root}/{name}{ext}`` over ``exts``.

    A name that already ends in one of ``exts`` is tried as given first.
    """
    root = Path(root)
    check_sample_name(name, f"media root {root}")
    candidates = [root / f"{name}{ext}" for ext in exts]
    if Path(name).suffix.lower() in exts:
        candidates.insert(0, root / name)
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise MediaNotFoundError(
        f"no media file for sample '{name}' under {root}; tried: {tried}. "
        "Check the media root in the config or the sample name"
    )


def _frame_indices(sampler: FrameSelection, num_frames: int, fps: Optional[float], source) -> np.ndarray:
    if isinstance(sampler, int):
        from my_affectgpt.processors.frame_sampling import uniform_indices

        indices = uniform_indices(num_frames, sampler)
    else:
        indices = sampler(num_frames, fps)
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size == 0 or indices.min() < 0 or indices.max() >= num_frames:
        raise ValueError(
            f"frame sampler returned indices {indices.tolist()} for {source}, which has "
            f"{num_frames} frames; indices must be non-empty and within [0, {num_frames})"
        )
    return indices


@dataclass(frozen=True)
class DecodedVideo:
    frames: np.ndarray  # uint8 [T, size, size, 3], RGB
    indices: np.ndarray  # int64 [T], the decoded frame numbers (0-based)
    fps: float  # the container's average frame rate
    num_frames: int


def _decoder_threads() -> int:
    """1 inside a DataLoader worker, else 0 (ffmpeg picks one thread per core).

    The workers are the parallelism there: with every worker's decoder also starting a
    thread per core, N workers oversubscribe the machine N times over.
    """
    from torch.utils.data import get_worker_info

    return 1 if get_worker_info() is not None else 0


def read_video_frames(path, sampler: FrameSelection, size: int = 224) -> DecodedVideo:
    """Decode the sampled frames of a video, resized to ``size`` x ``size`` while decoding."""
    import decord

    # decord raises RuntimeError when it cannot open a file and DECORDError when decoding fails.
    decord_errors = (decord.DECORDError, RuntimeError)
    path = Path(path)
    if not path.is_file():
        raise MediaNotFoundError(f"video file not found: {path}")
    try:
        reader = decord.VideoReader(str(path), width=size, height=size, ctx=decord.cpu(0),
                                    num_threads=_decoder_threads())
        num_frames = len(reader)
        fps = float(reader.get_avg_fps())
    except decord_errors as err:
        raise MediaError(f"cannot open video {path}: {err}") from err
    if num_frames == 0:
        raise MediaError(f"video {path} has no frames")
    indices = _frame_indices(sampler, num_frames, fps, path)
    try:
        frames = reader.get_batch(indices.tolist()).asnumpy()
    except decord_errors as err:
        raise MediaError(f"cannot decode frames {indices.tolist()} of video {path}: {err}") from err
    return DecodedVideo(frames=frames, indices=indices, fps=fps, num_frames=num_frames)


def _resize_rgb(frames: Sequence[np.ndarray], size: int) -> np.ndarray:
    from PIL import Image

    out = []
    for frame in frames:
        if frame.shape[:2] != (size, size):
            frame = np.asarray(Image.fromarray(frame).resize((size, size), Image.BICUBIC))
        out.append(frame)
    return np.stack(out)


def _check_rgb_uint8(array: np.ndarray, source) -> None:
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8 or array.shape[0] == 0:
        raise MediaError(
            f"face crops in {source} have shape {array.shape} and dtype {array.dtype}; "
            "expected a non-empty uint8 array [F, H, W, 3] (RGB)"
        )


def load_face_crops(face_root, name: str, sampler: FrameSelection, size: int = 224) -> np.ndarray:
    """Sampled face crops of one sample as uint8 ``[T, size, size, 3]``.

    Reads ``{face_root}/{name}/{name}.npy`` (uint8 ``[F, H, W, 3]``, as written by the
    OpenFace face-crop step) or, when that is absent, the images ``{face_root}/{name}/*``
    (.bmp/.jpg/.jpeg/.png, in file-name order). Only the sampled crops are read.
    """
    check_sample_name(name, f"face root {face_root}")
    folder = Path(face_root) / name
    npy_path = folder / f"{name}.npy"
    if npy_path.is_file():
        try:
            crops = np.load(npy_path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:
            raise MediaError(f"cannot read face crops {npy_path}: {err}") from err
        _check_rgb_uint8(crops, npy_path)
        indices = _frame_indices(sampler, crops.shape[0], None, npy_path)
        return _resize_rgb([np.asarray(crops[i]) for i in indices], size)

    images = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_EXTS) if folder.is_dir() else []
    if not images:
        raise MediaNotFoundError(
            f"no face crops for sample '{name}': neither {npy_path} nor images "
            f"({', '.join(IMAGE_EXTS)}) in {folder}. Run the face-crop step or check face_root"
        )
    from PIL import Image, UnidentifiedImageError

    indices = _frame_indices(sampler, len(images), None, folder)
    frames = []
    for i in indices:
        try:
            with Image.open(images[i]) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except (UnidentifiedImageError, OSError) as err:
            raise MediaError(f"cannot read face image {images[i]}: {err}") from err
    return _resize_rgb(frames, size)


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int  # of the returned wave
    source_sample_rate: int
    source_channels: int
    codec: str
    packets: int  # non-empty packets read from the audio stream
    dropped_packets: int  # packets the decoder rejected as invalid data (skipped)
    dropped_seconds: float  # their duration, when the container states it


def read_audio(path, sr: int = 16000) -> Tuple[np.ndarray, AudioInfo]:
    """Decode the first audio stream of ``path`` to float32 mono at ``sr`` Hz.

    Packets the decoder rejects as invalid data are skipped and counted in
    ``info.dropped_packets`` (real files carry a few; decord's AudioReader gives up on
    them). Channels are averaged into mono. A file with no audio stream raises
    :class:`NoAudioStreamError`; one where nothing decodes raises :class:`MediaError`.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise MediaNotFoundError(f"audio/video file not found: {path}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise MediaError(f"cannot open media file {path}: {err}") from err
    with container:
        if not container.streams.audio:
            raise NoAudioStreamError(
                f"{path} has no audio stream; point the audio root at files with sound or "
                "drop the audio modality for this dataset"
            )
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=None, rate=sr)
        chunks, packets, dropped, dropped_seconds = [], 0, 0, 0.0
        try:
            for packet in container.demux(stream):
                if packet.size:  # the demuxer ends with an empty packet that flushes the decoder
                    packets += 1
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    dropped += 1
                    if packet.duration and packet.time_base:
                        dropped_seconds += float(packet.duration * packet.time_base)
                    continue
                for frame in frames:
                    chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
        except av.error.FFmpegError as err:
            raise MediaError(f"cannot decode the audio of {path}: {err}") from err
        info = AudioInfo(
            sample_rate=sr,
            source_sample_rate=int(stream.codec_context.sample_rate or 0),
            source_channels=int(stream.codec_context.channels or 0),
            codec=stream.codec_context.name,
            packets=packets,
            dropped_packets=dropped,
            dropped_seconds=dropped_seconds,
        )
    if not chunks:
        raise MediaError(
            f"no audio could be decoded from {path} ({dropped} of {packets} packets were invalid)"
        )
    wave = np.concatenate(chunks, axis=1).mean(axis=0).astype(np.float32)  # chunks are [channels, samples]
    return wave, info


def split_audio_clips(
    wave: np.ndarray, clips_per_video: int = 8, clip_seconds: float = 2.0, sr: int = 16000
) -> np.ndarray:
    """Cut a mono wave into ``clips_per_video`` clips of ``clip_seconds`` each.

    Rule (as ImageBind's constant-clips-per-video sampler): clip starts are spread evenly from
    the first sample to the last start that still fits a whole clip, so the first clip opens
    the audio and the last one closes it; clips overlap when the audio is shorter than
    ``clips_per_video * clip_seconds``. Audio shorter than one clip is zero-padded at the end,
    and every clip is then that padded audio.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"expected a non-empty mono wave [samples], got shape {wave.shape}")
    if clips_per_video < 1 or clip_seconds <= 0:
        raise ValueError(f"clips_per_video must be >= 1 and clip_seconds > 0, got {clips_per_video}, {clip_seconds}")
    clip_len = int(round(clip_seconds * sr))
    if wave.size < clip_len:
        wave = np.pad(wave, (0, clip_len - wave.size))
    last_start = wave.size - clip_len
    starts = np.rint(np.linspace(0, last_start, clips_per_video)).astype(np.int64)
    return np.stack([wave[s : s + clip_len] for s in starts])


def clip_normalize(frames) -> "torch.Tensor":  # noqa: F821 (torch is imported lazily)
    """uint8 RGB ``[T, H, W, 3]`` -> CLIP-normalised float32 tensor ``[T, 3, H, W]``."""
    import torch

    frames = torch.as_tensor(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {tuple(frames.shape)} {frames.dtype}")
    # (x / 255 - mean) / std as one scale and one shift, in place on a single float copy. It
    # runs on every sample's frames; written as four whole-tensor passes it cost ~6 ms of the
    # ~20 ms it takes to decode a sample on one CPU core.
    scale = torch.tensor([1.0 / (255.0 * s) for s in CLIP_STD]).view(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(CLIP_MEAN, CLIP_STD)]).view(1, 3, 1, 1)
    pixels = torch.empty(frames.shape[0], 3, *frames.shape[1:3], dtype=torch.float32)
    pixels.copy_(frames.permute(0, 3, 1, 2))
    return pixels.mul_(scale).add_(shift)
