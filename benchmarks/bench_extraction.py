#!/usr/bin/env python
"""Throughput of the batched feature extractor against a one-sample-at-a-time loop.

Both runs use the same synthetic clips and the same tiny encoders (random weights, built
locally), and the same extraction code (``run_extraction``, frame + audio): the batched run
decodes in ``--num_workers`` DataLoader workers and encodes ``--batch_size`` samples per
encoder step; the baseline decodes and encodes one sample at a time in the main process
(``batch_size=1, num_workers=0``). Imports and the first encoder load are paid before timing;
each timed run still loads its encoders and writes every ``.npy`` and its report, into a fresh
folder. After one untimed warm-up run each, the two alternate for ``--rounds`` rounds and the
median of the per-round ratios is reported, so slow phases of a shared machine hit both
sides alike.

A third loop measures how much this machine's cores give to independent work at all:
``--shards`` one-at-a-time extractions at once (default: one per core), each over its own
shard of the clips in a forked process on 1 torch thread (as ``--shard i/n`` runs would).
Its ratio is about the most any way of spreading the work over the cores can reach here.
Prints a settings line and::

    batched: X samples/s  one-at-a-time: Y samples/s  ratio: Z (target >= 2x)
    N one-at-a-time shards at once: W samples/s  ratio: V (what the cores give to independent processes)
"""
from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from bench_train import interleaved_rounds, quiet_libraries, set_threads  # noqa: E402

RATIO_TARGET = 2.0


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


def single_threaded_extraction(settings) -> None:
    """``run_extraction`` in a forked process, on 1 torch thread (one process per core). Set
    before any torch work: a child forked from a parent that used OpenMP threads hangs in its
    first multi-threaded op, which is also why DataLoader workers start with 1 thread."""
    import torch

    from my_affectgpt.extraction.runner import run_extraction

    torch.set_num_threads(1)
    run_extraction(settings)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=64, help="clips per timed run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process in both runs")
    parser.add_argument("--shards", type=int, default=os.cpu_count() or 1,
                        help="one-at-a-time extractions run at once in the third loop")
    args = parser.parse_args(argv)
    import torch

    set_threads(args.threads)
    quiet_libraries()
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
        build_encoder(spec.visual_encoder, spec.visual_encoder_path)
        build_encoder(spec.acoustic_encoder, spec.acoustic_encoder_path)
        base = ExtractionSettings(dataset="bench", modalities=("frame", "audio"), save_root=tmp / "unused",
                                  encoders=spec, video_root=videos, progress=False)
        runs = itertools.count()
        failures = []

        def extraction(batch_size: int, workers: int):
            def run() -> None:
                settings = replace(base, save_root=tmp / f"run{next(runs)}", batch_size=batch_size,
                                   num_workers=workers)
                report, _ = run_extraction(settings)
                if report.failed_count or report.counts["frame"]["done"] != args.samples:
                    failures.append(report.summary())
                shutil.rmtree(settings.save_root)
            return run

        def parallel_shards() -> None:
            save_root = tmp / f"run{next(runs)}"
            fork = multiprocessing.get_context("fork")
            processes = [
                fork.Process(target=single_threaded_extraction, args=(replace(
                    base, save_root=save_root, batch_size=1, num_workers=0, shard_index=k, shard_count=args.shards),))
                for k in range(args.shards)
            ]
            for process in processes:
                process.start()
            for process in processes:
                process.join()
            written = len(list(save_root.rglob("*.npy")))
            if any(p.exitcode for p in processes) or written != 2 * args.samples:
                failures.append(f"{args.shards} shards wrote {written} of {2 * args.samples} feature files")
            shutil.rmtree(save_root)

        times = interleaved_rounds({"one-at-a-time": extraction(1, 0),
                                    "batched": extraction(args.batch_size, args.num_workers),
                                    "shards": parallel_shards},
                                   args.rounds, args.device)
        if failures:
            print(f"a run did not extract every sample:\n{failures[0]}", file=sys.stderr)
            return 1
    walls = {name: [t.wall for t in timings] for name, timings in times.items()}

    def rate(name: str) -> str:
        return f"{args.samples / statistics.median(walls[name]):.1f} samples/s"

    def ratio(name: str) -> float:
        return statistics.median(one / other for one, other in zip(walls["one-at-a-time"], walls[name]))

    print(f"{args.samples} clips x {args.rounds} rounds, frame+audio, batch {args.batch_size}, "
          f"{args.num_workers} decode worker(s), {torch.get_num_threads()} torch thread(s), {args.device}")
    print(f"batched: {rate('batched')}  one-at-a-time: {rate('one-at-a-time')}  "
          f"ratio: {ratio('batched'):.2f} (target >= {RATIO_TARGET:g}x)")
    print(f"{args.shards} one-at-a-time shards at once: {rate('shards')}  ratio: {ratio('shards'):.2f} "
          "(what the cores give to independent processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
