#!/usr/bin/env python
"""Throughput of the batched feature extractor against a one-sample-at-a-time loop.

Both runs use the same synthetic clips and the same tiny encoders (random weights, built
locally), and the same extraction code: the batched run decodes in DataLoader workers and
encodes ``--batch_size`` samples per encoder call; the baseline decodes and encodes one
sample at a time in the main process (``batch_size=1, num_workers=0``). Encoder loading
and imports are paid before timing. On a small CPU shared with other work the numbers move
a lot between runs: compare ratios from the same run only. Prints a settings line and:

    batched: X samples/s  one-at-a-time: Y samples/s  ratio: Z
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def write_clip(path: Path, n_frames: int, seconds: float, fps: int = 15, size=(160, 120)) -> None:
    """A small mp4 (moving gradient + AAC tone) written with PyAV."""
    import av
    import numpy as np

    width, height = size
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=16000, layout="mono")
        ramp = np.linspace(0, 255, width, dtype=np.float32)
        for i in range(n_frames):
            image = np.empty((height, width, 3), np.uint8)
            image[:] = ((ramp + 9 * i) % 256).astype(np.uint8)[None, :, None]
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        t = np.arange(int(seconds * 16000)) / 16000
        frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[None], format="fltp",
                                           layout="mono")
        frame.sample_rate = 16000
        for packet in list(audio.encode(frame)) + list(audio.encode(None)):
            container.mux(packet)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads of the main process in both runs (0: torch's default)")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from my_affectgpt.common.tiny_models import build_tiny_clip_vision, build_tiny_hubert
    from my_affectgpt.extraction.encode import EncoderSpec
    from my_affectgpt.extraction.runner import ExtractionSettings, run_extraction
    from my_affectgpt.models.encoders import build_encoder

    with tempfile.TemporaryDirectory(prefix="bench_extraction_") as tmp:
        tmp = Path(tmp)
        videos = tmp / "video"
        videos.mkdir()
        for i in range(args.samples):
            write_clip(videos / f"clip_{i:04d}.mp4", n_frames=45, seconds=3.0)
        spec = EncoderSpec(
            visual_encoder="CLIP_VIT_LARGE", visual_encoder_path=str(build_tiny_clip_vision(tmp / "clip")),
            acoustic_encoder="HUBERT_LARGE", acoustic_encoder_path=str(build_tiny_hubert(tmp / "hubert")),
            au_clip_model="", au_clip_pretrained="", device=args.device,
        )
        # Load the encoders once before timing, so neither run pays the one-off imports.
        build_encoder(spec.visual_encoder, spec.visual_encoder_path)
        build_encoder(spec.acoustic_encoder, spec.acoustic_encoder_path)
        base = ExtractionSettings(dataset="bench", modalities=("frame", "audio"), save_root=tmp / "unused",
                                  encoders=spec, video_root=videos, progress=False)
        rates = {}
        for label, batch_size, workers in (("one-at-a-time", 1, 0), ("batched", args.batch_size, args.num_workers)):
            settings = replace(base, save_root=tmp / label, batch_size=batch_size, num_workers=workers)
            start = time.perf_counter()
            report, _ = run_extraction(settings)
            elapsed = time.perf_counter() - start
            if report.failed_count or report.counts["frame"]["done"] != args.samples:
                print(f"{label} run did not extract every sample:\n{report.summary()}", file=sys.stderr)
                return 1
            rates[label] = args.samples / elapsed
    print(f"{args.samples} clips, frame+audio, batch {args.batch_size}, {args.num_workers} decode workers, "
          f"{torch.get_num_threads()} torch thread(s), {args.device}")
    print(f"batched: {rates['batched']:.1f} samples/s  one-at-a-time: {rates['one-at-a-time']:.1f} samples/s  "
          f"ratio: {rates['batched'] / rates['one-at-a-time']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
