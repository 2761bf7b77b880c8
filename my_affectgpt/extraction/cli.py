"""Command line of ``extract_multimodal_features_precompute.py``.

Exit status: 0 when every pending output was written, 1 when some samples failed (each
reported, every other one written), 2 for a usage or setup error, 130 when interrupted.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from my_affectgpt.common.errors import UserError
from my_affectgpt.extraction.layout import MODALITIES

# The flags that can give each modality its input (a CSV may list media paths).
SOURCES = {"frame": ("video_root", "csv_path"), "face": ("face_root",),
           "audio": ("audio_root", "video_root", "csv_path"), "au": ("mer_factory_output",)}


def _path(value: str) -> Path:
    return Path(os.path.expanduser(os.path.expandvars(value))).resolve()


def _path_or_hub(value: str) -> str:
    """A model location: an existing local path (``~``/``$VARS`` expanded), else a hub id as given."""
    expanded = os.path.expanduser(os.path.expandvars(value))
    return str(Path(expanded).resolve()) if value and os.path.exists(expanded) else value


def _dataset_name(value: str) -> str:
    from my_affectgpt.common.sample_names import check_sample_name

    try:
        return check_sample_name(value, "--dataset")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="extract_multimodal_features_precompute.py",
        description="Pre-extract frame/face/audio/AU features as float32 .npy files under "
        "{save_root}/{dataset}/ (resumable, shardable; see the report file at the end).",
    )
    p.add_argument("--dataset", required=True, type=_dataset_name,
                   help="dataset name: the output subfolder, and the MER-Factory folder of a registered "
                   "dataset (mercaptionplus -> MERCaptionPlus)")
    p.add_argument("--modality", choices=MODALITIES + ("all",), default="all",
                   help="what to extract; 'all' = every modality whose source is given")
    p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when available; "
                   "plain 'cuda' under torchrun means cuda:LOCAL_RANK)")
    p.add_argument("--video_root", type=_path, help="folder of {name}.mp4|.avi|.mkv|.mov|.webm")
    p.add_argument("--face_root", type=_path, help="folder of {name}/{name}.npy face crops (OpenFace)")
    p.add_argument("--audio_root", type=_path, help="folder of {name}.wav|.flac; default: the video's audio stream")
    p.add_argument("--mer-factory-output", "--mer_factory_output", dest="mer_factory_output", type=_path,
                   help="MER-Factory output root (AU JSONs: AU features and emotion_peak sampling)")
    p.add_argument("--mer_factory_folder", default=None,
                   help="the dataset's folder under --mer-factory-output (default: the registered dataset's)")
    p.add_argument("--csv_path", type=_path, help="CSV listing the samples (default: list the first media root)")
    p.add_argument("--csv_column", default="name", help="CSV column with sample names or media paths")
    p.add_argument("--save_root", type=_path, required=True, help="outputs go to {save_root}/{dataset}/")
    p.add_argument("--visual_encoder", default="CLIP_VIT_LARGE", help="registered visual encoder name")
    p.add_argument("--acoustic_encoder", default="HUBERT_LARGE", help="registered acoustic encoder name")
    p.add_argument("--visual_encoder_path", type=_path_or_hub, default="",
                   help="CLIP model directory or hub id (frame/face)")
    p.add_argument("--acoustic_encoder_path", type=_path_or_hub, default="",
                   help="HuBERT model directory or hub id (audio)")
    p.add_argument("--au_clip_model", default="ViT-B-32", help="open_clip model name or model-config JSON (au)")
    p.add_argument("--au_clip_pretrained", default="openai", help="'openai', a checkpoint file, or 'none' (au)")
    p.add_argument("--frame_n_frms", type=int, default=8, help="frames (face crops) per sample")
    p.add_argument("--frame_sampling", choices=("uniform", "emotion_peak"), default="uniform",
                   help="emotion_peak takes the AU JSON's peak frames (needs --mer-factory-output)")
    p.add_argument("--clips_per_video", type=int, default=8, help="2-second audio clips per sample")
    p.add_argument("--image_size", type=int, default=224, help="frame/face size fed to the visual encoder")
    p.add_argument("--batch_size", type=int, default=16, help="samples per encoder call")
    p.add_argument("--num_workers", type=int, default=None,
                   help="DataLoader workers decoding media (default: 4, at most the cores but one)")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32", help="encoder weight dtype")
    p.add_argument("--overwrite", action="store_true", help="re-extract outputs that already exist and are valid")
    p.add_argument("--shard", default=None, help="INDEX/COUNT: this process's share of the samples "
                   "(default under torchrun: RANK/WORLD_SIZE)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def _modalities(args, parser) -> Tuple[str, ...]:
    if args.modality != "all":
        needed = SOURCES[args.modality]
        if not any(getattr(args, flag) for flag in needed):
            flags = " or ".join("--" + f.replace("mer_factory_output", "mer-factory-output") for f in needed)
            parser.error(f"--modality {args.modality} needs {flags}")
        return (args.modality,)
    chosen = tuple(m for m in MODALITIES if any(getattr(args, flag) for flag in SOURCES[m]))
    if not chosen:
        parser.error("--modality all found no source: give --video_root, --face_root, --audio_root "
                     "and/or --mer-factory-output")
    return chosen


def _shard(args, parser) -> Tuple[int, int]:
    from my_affectgpt.extraction.samples import parse_shard, shard_from_env

    try:
        return parse_shard(args.shard) if args.shard else shard_from_env()
    except ValueError as err:
        parser.error(str(err))


def _device(requested: Optional[str]) -> str:
    import torch

    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {requested}, but PyTorch sees no GPU; use --device cpu")
    if requested == "cuda":
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return requested


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Decode workers when --num_workers is not given: 4, leaving a core to the encoding process."""
    return max(0, min(4, usable_cores() - 1))


def encoding_threads(device: str, num_workers: int) -> Optional[int]:
    """Torch threads for the encoding process of a CPU run with decode workers: the cores the
    workers leave, at least 1. On 2 cores with 1 worker, torch's default (2) made the batched
    run 30% slower than 1 thread. None (keep torch's setting) on an accelerator, without
    workers, or when the user set OMP_NUM_THREADS."""
    import torch

    if torch.device(device).type != "cpu" or num_workers == 0 or "OMP_NUM_THREADS" in os.environ:
        return None
    return max(1, usable_cores() - num_workers)


@contextmanager
def _torch_threads(count: Optional[int]):
    """``torch.set_num_threads(count)`` for the block (nothing when None), then the previous value."""
    import torch

    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def settings_from_args(argv: Optional[Sequence[str]] = None):
    """``(ExtractionSettings, launched_by_torchrun)`` from the command line; usage errors exit 2."""
    from my_affectgpt.extraction.encode import EncoderSpec
    from my_affectgpt.extraction.runner import ExtractionSettings

    parser = build_parser()
    args = parser.parse_args(argv)
    modalities = _modalities(args, parser)
    if args.frame_sampling == "emotion_peak" and not args.mer_factory_output and {"frame", "face"} & set(modalities):
        parser.error("--frame_sampling emotion_peak needs --mer-factory-output (the AU JSONs hold the peaks)")
    for flag in ("video_root", "face_root", "audio_root", "mer_factory_output"):
        folder = getattr(args, flag)
        if folder is not None and not folder.is_dir():
            parser.error(f"--{flag.replace('mer_factory_output', 'mer-factory-output')} {folder}: folder not found")
    for flag in ("frame_n_frms", "clips_per_video", "batch_size", "image_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1")
    if args.num_workers is None:
        args.num_workers = default_workers()
    if args.num_workers < 0:
        parser.error("--num_workers must be >= 0")
    shard_index, shard_count = _shard(args, parser)
    try:
        device = _device(args.device)
    except ValueError as err:
        parser.error(str(err))
    spec = EncoderSpec(
        visual_encoder=args.visual_encoder,
        visual_encoder_path=args.visual_encoder_path,
        acoustic_encoder=args.acoustic_encoder,
        acoustic_encoder_path=args.acoustic_encoder_path,
        au_clip_model=args.au_clip_model,
        au_clip_pretrained=args.au_clip_pretrained,
        device=device,
        dtype=args.dtype,
    )
    launched_by_torchrun = args.shard is None and shard_count > 1 and "MASTER_ADDR" in os.environ
    settings = ExtractionSettings(
        dataset=args.dataset,
        modalities=modalities,
        save_root=args.save_root,
        encoders=spec,
        video_root=args.video_root,
        audio_root=args.audio_root,
        face_root=args.face_root,
        mer_factory_output=args.mer_factory_output,
        mer_factory_folder=args.mer_factory_folder,
        csv_path=args.csv_path,
        csv_column=args.csv_column,
        frame_n_frms=args.frame_n_frms,
        frame_sampling=args.frame_sampling,
        clips_per_video=args.clips_per_video,
        image_size=args.image_size,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        overwrite=args.overwrite,
        shard_index=shard_index,
        shard_count=shard_count,
        progress=not args.no_progress,
    )
    return settings, launched_by_torchrun


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a scheduler stopping the job) unwinds like Ctrl-C, so temp files are removed
    and the report is written. Only in the main thread, where Python delivers signals."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _wait_for_all_ranks(settings) -> None:
    """Under torchrun a rank that exits non-zero makes torchrun stop the others, so every rank
    waits for the rest before exiting; rank 0 then writes the merged report once, complete."""
    from datetime import timedelta

    import torch.distributed as dist

    from my_affectgpt.extraction.runner import merge_shard_reports

    # Shards can finish hours apart: the barrier must not time out before the slowest one.
    dist.init_process_group("gloo", timeout=timedelta(days=7))
    try:
        dist.barrier()
        if dist.get_rank() == 0:
            merge_shard_reports(settings)
    finally:
        dist.destroy_process_group()


def main(argv: Optional[List[str]] = None) -> int:
    from my_affectgpt.common.logger import setup_logging
    from my_affectgpt.extraction.runner import run_extraction

    settings, launched_by_torchrun = settings_from_args(argv)
    setup_logging()
    try:
        with _sigterm_as_interrupt(), _torch_threads(encoding_threads(settings.encoders.device, settings.num_workers)):
            report, path = run_extraction(settings)
    except KeyboardInterrupt:
        print("interrupted: finished outputs are kept; run the same command again to resume", file=sys.stderr)
        return 130
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"report: {path}")
    if launched_by_torchrun:
        _wait_for_all_ranks(settings)
    return 1 if report.failed_count else 0
