"""The inference loop: one model, each checkpoint's weights, each dataset's answers and scores.

Per dataset and checkpoint, answers are appended to
``{run.output_dir}/results-{dataset}/{ckpt_name}.jsonl`` batch by batch (a killed run restarted
with the same command continues where it stopped) and mirrored in ``{ckpt_name}.npz``
(``name2reason``, the original AffectGPT format), with the labels extracted from them in
``{ckpt_name}-openset.npz`` (and ``-openset-sentiment.npz``) as the original evaluation writes
them. A results file remembers everything that
changes an answer (checkpoint file, question, generation settings, AU mode, dataset settings);
resuming it with anything else is an error, so answers of two setups never mix.

Under ``torchrun`` each of the N processes answers its own consecutive block of every dataset
into ``{ckpt_name}.rank{r}of{N}.jsonl`` (resumable the same way); then process 0 merges the
blocks into ``{ckpt_name}.jsonl`` in dataset order, checks that every sample is there once,
and writes the ``.npz`` files and the scores. A killed run resumes with any number of
processes: process 0 first folds whatever earlier parts exist into ``{ckpt_name}.jsonl``, and
what is there is done for everyone.
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from my_affectgpt.common.dist_utils import (
    DistInfo, all_gather_objects, contiguous_share, is_main_process, run_on_main,
)
from my_affectgpt.common.errors import UserError

logger = logging.getLogger("my_affectgpt")

# Dataset keys that change what the model sees for a sample.
ANSWER_CHANGING_DATASET_KEYS = (
    "face_or_frame", "frame_sampling", "frame_n_frms", "face_sampling", "face_n_frms", "clips_per_video",
    "image_size", "max_length", "use_preextracted_frame", "use_preextracted_face", "use_preextracted_audio",
    "use_preextracted_au", "preextracted_root", "visual_encoder", "acoustic_encoder", "mer_factory_output",
    "mer_factory_folder", "subtitle_csv", "subtitle_column", "au_missing_description",
)


def checkpoint_identity(path: Path) -> dict:
    """What a results file's answers came from; a retrained checkpoint gets a new identity."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {
        "checkpoint": str(path.resolve()),
        "bytes": sum(f.stat().st_size for f in files),
        "mtime_ns": max(f.stat().st_mtime_ns for f in files),
    }


def generation_settings(inf) -> dict:
    """``model.generate``'s keyword arguments from the ``inference`` section (the sampling ones
    only when sampling), also recorded in a results file's identity."""
    settings = {"max_new_tokens": inf.max_new_tokens, "do_sample": inf.do_sample}
    if inf.do_sample:
        settings.update(temperature=inf.temperature, top_p=inf.top_p)
    return settings


def results_identity(cfg, name: str, dataset, ckpt_path: Path) -> dict:
    """Everything that changes the answers in one results file."""
    ds = cfg.datasets[name]
    return {
        **checkpoint_identity(ckpt_path),
        "prompt_kind": dataset.question[0],
        "question": dataset.question[1],
        "generation": generation_settings(cfg.inference),
        "au_mode": cfg.au_mode(name),
        "model": {"llama_model": cfg.model.llama_model, "llm_dtype": cfg.model.llm_dtype},
        "dataset": {key: getattr(ds, key) for key in ANSWER_CHANGING_DATASET_KEYS},
    }


def results_dir(cfg, dataset_name: str, ckpt_path: Path) -> Path:
    """``{run.output_dir}/results-{dataset}``, or with the original's ``inference.base_root``
    its layout: ``{base_root}-{dataset}/{the checkpoints' folder name}``."""
    if cfg.inference.base_root:
        return Path(f"{cfg.inference.base_root}-{dataset_name}") / Path(ckpt_path).resolve().parent.name
    return Path(cfg.run.output_dir) / f"results-{dataset_name}"


def build_test_datasets(cfg, registry) -> Dict[str, object]:
    from my_affectgpt.conversation.prompts import inference_question

    question = inference_question(cfg.inference.no_reasoning)
    datasets = {}
    for name in cfg.datasets:
        (dataset,) = registry.get_builder_class(name)(cfg, name).build(question=question).values()
        datasets[name] = dataset
    return datasets


def generate_dataset(model, dataset, indices: List[int], writer, cfg, extract_labels) -> Tuple[int, int]:
    """Answer the samples at ``indices`` into ``writer``; returns (answers written, samples skipped)."""
    import torch
    from torch.utils.data import DataLoader, Subset
    from tqdm import tqdm

    from my_affectgpt.common.devices import autocast
    from my_affectgpt.datasets.collate import raise_failed

    if not indices:
        return 0, 0
    inf = cfg.inference
    loader = DataLoader(Subset(dataset, indices), batch_size=inf.batch_size, shuffle=False,
                        num_workers=cfg.run.num_workers, collate_fn=dataset.collater)
    gen_kwargs = generation_settings(inf)
    prompt_kind = dataset.question[0]
    written = skipped = 0
    show_progress = sys.stderr.isatty() and is_main_process()
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"{writer.path.parent.name}/{writer.path.stem}", disable=not show_progress):
            raise_failed(batch)
            for reason in batch["skipped"]:
                logger.warning("skipped sample: %s", reason)
            skipped += len(batch["skipped"])
            if not batch["names"]:
                continue
            with autocast(cfg.run.device, cfg.run):  # run.amp: the autocast training runs under
                answers = model.generate(batch, **gen_kwargs)
            writer.append([
                {"name": name, "prompt_kind": prompt_kind, "answer": answer, "labels": extract_labels(answer)}
                for name, answer in zip(batch["names"], answers)
            ])
            written += len(answers)
    return written, skipped


def answer_share(model, dataset, final: Path, source: dict, cfg, extract_labels, dist: DistInfo) -> List[Tuple[int, int]]:
    """Answer this process's block of ``dataset`` into its part of ``final`` (``final`` itself for
    a single process); returns every process's (answers written, samples skipped)."""
    from my_affectgpt.evaluation.results_io import ResultsWriter, merge_results, part_path

    names = sample_names(dataset)
    done = run_on_main(lambda: set(merge_results(final, source, names).done))
    # A single process appends to the results file itself, as it always has.
    writer = ResultsWriter(part_path(final, dist.rank, dist.world_size) if dist.distributed else final, source)
    todo = [i for i in contiguous_share(len(names), dist.rank, dist.world_size) if names[i] not in done]
    return all_gather_objects(generate_dataset(model, dataset, todo, writer, cfg, extract_labels))


def merge_shares(final: Path, source: dict, dataset, counts: List[Tuple[int, int]]):
    """Process 0, after every :func:`answer_share`: the parts merged into ``final``, checked to
    hold every sample of every block but the skipped ones; returns the merged file's writer."""
    from my_affectgpt.evaluation.results_io import merge_results

    names = sample_names(dataset)
    merged = merge_results(final, source, names)
    world_size = len(counts)
    for rank, (_, skipped) in enumerate(counts):
        missing = [names[i] for i in contiguous_share(len(names), rank, world_size) if names[i] not in merged.done]
        if len(missing) != skipped:
            first = f" (first: {missing[0]!r})" if missing else ""
            raise UserError(
                f"{final}: process {rank} of {world_size} skipped {skipped} samples, but {len(missing)} of its "
                f"samples have no answer{first}; every process must write to the same run.output_dir "
                f"(on several nodes: a folder they all share)"
            )
    return merged


def sample_names(dataset) -> List[str]:
    return [record["name"] for record in dataset.records]


def _label_extractor(inf):
    """The optional LLM label extractor (``inference.label_extractor``: a local model path)."""
    if inf.label_extractor == "lexicon":
        return None
    from my_affectgpt.evaluation.label_extraction import LLMLabelExtractor

    return LLMLabelExtractor(inf.label_extractor)


def device_of(cfg, dist: Optional[DistInfo] = None) -> str:
    """``run.device``; the original's ``inference.gpu`` picks the GPU of a single process, and
    under torchrun each process takes ``cuda:{LOCAL_RANK}``. No GPU is an error."""
    import torch

    device = cfg.run.device
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("run.device is cuda but no GPU is visible; use --options run.device=cpu")
    if device == "cuda" and dist is not None and dist.distributed:
        if cfg.inference.gpu is not None:
            raise UserError(
                f"inference.gpu={cfg.inference.gpu} picks one GPU, but torchrun started {dist.world_size} "
                "processes that each take the GPU of their LOCAL_RANK; drop inference.gpu "
                "(choose GPUs with CUDA_VISIBLE_DEVICES)"
            )
        return dist.device
    if device == "cuda" and cfg.inference.gpu is not None:
        device = f"cuda:{cfg.inference.gpu}"
    return device


def run(cfg, registry, dataset_names: Optional[List[str]] = None, dist: Optional[DistInfo] = None) -> int:
    """Inference over the config's dataset blocks (or ``dataset_names``); prints the scores.

    ``dist``: this process's place under torchrun (``init_distributed``); None for one process.
    """
    from my_affectgpt.evaluation.label_cache import write_label_caches
    from my_affectgpt.evaluation.label_extraction import extract_labels, extract_open_labels
    from my_affectgpt.evaluation.metrics import EmotionWheel, load_emotion_wheel
    from my_affectgpt.evaluation.report import format_table, load_scores, record_scores, score_results, write_scores
    from my_affectgpt.models.trained_weights import load_trained_weights, resolve_checkpoints

    dist = dist or DistInfo(rank=0, world_size=1, local_rank=0, device=cfg.run.device)
    cfg = cfg.select(dataset_names or list(cfg.datasets)).for_inference()
    checkpoints = resolve_checkpoints(cfg)
    device = device_of(cfg, dist)
    out_dir = Path(cfg.run.output_dir)
    if dist.rank == 0:
        cfg.save(out_dir / "inference_config.yaml")  # beside, not over, the training config.yaml
    model = registry.get_task_class(cfg.run.task)().build_model(cfg).to(device).eval()
    datasets = build_test_datasets(cfg, registry)
    llm_extractor = _label_extractor(cfg.inference)
    wheel = load_emotion_wheel(cfg.inference.emotion_wheel) if cfg.inference.emotion_wheel else EmotionWheel({})
    scores_path = out_dir / "scores.json"
    scores = load_scores(scores_path)
    for ckpt_name, ckpt_path in checkpoints:
        load_trained_weights(model, ckpt_path)
        for name, dataset in datasets.items():
            start = time.perf_counter()
            extract = llm_extractor or (extract_open_labels if dataset.eval_kind == "openset" else extract_labels)
            final = results_dir(cfg, name, ckpt_path) / f"{ckpt_name}.jsonl"
            source = results_identity(cfg, name, dataset, ckpt_path)
            counts = answer_share(model, dataset, final, source, cfg, extract, dist)

            def write_outputs() -> None:  # process 0 only
                writer = merge_shares(final, source, dataset, counts)
                logger.info("%s / %s: %d new answers in %.1f s (%d in total)", name, ckpt_name,
                            sum(written for written, _ in counts), time.perf_counter() - start, len(writer.done))
                writer.write_name2reason()
                # the labels extracted from these answers, in the original evaluation's cache files
                write_label_caches(writer.path, dataset.eval_kind, llm_extractor)
                gold = dataset.gold()
                if gold:
                    metrics = score_results(writer.path, dataset.eval_kind, gold=gold, wheel=wheel,
                                            extractor=llm_extractor)
                    record_scores(scores, name, dataset.eval_kind, ckpt_name, metrics)
                    write_scores(scores_path, scores)

            run_on_main(write_outputs)
    for dataset in datasets.values():
        dataset.fallback_reports()  # emotion_peak fallbacks to uniform, one line per dataset
    if dist.rank == 0 and scores["datasets"]:
        print(format_table(scores))
    return 0
