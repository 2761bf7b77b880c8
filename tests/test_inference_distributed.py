"""Inference split over processes: results parts, their merge, and two gloo ranks through the real CLI.

The two-rank runs start two fresh interpreters (``torch.multiprocessing``, as the DDP training
test does) that join one gloo process group and call ``inference.main`` as ``torchrun`` would.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import inference
import train
from conftest import demo_config, write_config
from my_affectgpt.common.dist_utils import contiguous_share, run_on_main
from my_affectgpt.common.errors import UserError
from my_affectgpt.evaluation.results_io import (
    ResultsWriter, merge_results, part_path, results_files, results_parts,
)
from test_runner import free_port

CKPT = "checkpoint_000001"
SOURCE = {"checkpoint": "c.pth", "question": "q"}


def read_jsonl(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def record(name: str, answer: str = "") -> dict:
    return {"name": name, "answer": answer or f"answer of {name}"}


# ---------------------------------------------------------------- shares and merging


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_contiguous_shares_cover_every_item_once_in_order(world_size):
    for n_items in range(12):
        shares = [contiguous_share(n_items, rank, world_size) for rank in range(world_size)]
        assert [i for share in shares for i in share] == list(range(n_items))
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_run_on_main_without_a_process_group_just_calls():
    def refuse():
        raise UserError("bad input")

    assert run_on_main(lambda: 7) == 7
    with pytest.raises(UserError, match="bad input"):
        run_on_main(refuse)


def test_merge_orders_by_dataset_deduplicates_and_removes_parts(tmp_path):
    final = tmp_path / "results-x" / f"{CKPT}.jsonl"
    order = [f"s{i}" for i in range(6)]
    ResultsWriter(final, SOURCE).append([record("s0"), record("s4")])
    ResultsWriter(part_path(final, 1, 2), SOURCE).append([record("s3"), record("s4"), record("s5")])
    ResultsWriter(part_path(final, 0, 3), SOURCE).append([record("s1")])
    with open(part_path(final, 0, 3), "a") as fh:
        fh.write('{"name": "s2", "ans')  # killed mid-line: dropped, not merged
    ResultsWriter(part_path(final, 2, 3), SOURCE)  # a process with nothing to do leaves only its source
    writer = merge_results(final, SOURCE, order)
    assert [r["name"] for r in read_jsonl(final)] == ["s0", "s1", "s3", "s4", "s5"]
    assert list(writer.done) == ["s0", "s1", "s3", "s4", "s5"]
    assert sorted(p.name for p in final.parent.iterdir()) == [f"{CKPT}.jsonl", f"{CKPT}.source.json"]


def test_merge_leaves_an_ordered_file_alone_and_keeps_unknown_names_last(tmp_path):
    final = tmp_path / f"{CKPT}.jsonl"
    ResultsWriter(final, SOURCE).append([record("a"), record("b")])
    before = final.stat().st_mtime_ns
    merge_results(final, SOURCE, ["a", "b", "c"])
    assert final.stat().st_mtime_ns == before
    ResultsWriter(final, SOURCE).append([record("zz"), record("c")])
    merge_results(final, SOURCE, ["a", "b", "c"])
    assert [r["name"] for r in read_jsonl(final)] == ["a", "b", "c", "zz"]


def test_merge_refuses_two_answers_for_one_sample_and_parts_of_other_settings(tmp_path):
    final = tmp_path / f"{CKPT}.jsonl"
    ResultsWriter(final, SOURCE).append([record("a", "happy")])
    ResultsWriter(part_path(final, 0, 2), SOURCE).append([record("a", "sad")])
    with pytest.raises(UserError, match=r"sample 'a' has different answers in .*checkpoint_000001\.jsonl and "
                                        r".*checkpoint_000001\.rank0of2\.jsonl"):
        merge_results(final, SOURCE, ["a"])
    part_path(final, 0, 2).unlink()
    ResultsWriter(part_path(final, 1, 2), {**SOURCE, "question": "other"}).append([record("b")])
    with pytest.raises(UserError, match=r"rank1of2\.jsonl holds .* other settings \(question: 'other' -> 'q'\)"):
        merge_results(final, SOURCE, ["a", "b"])


def test_results_parts_are_not_scored_as_checkpoints(tmp_path):
    final = tmp_path / "results-x" / f"{CKPT}.jsonl"
    ResultsWriter(final).append([record("a")])
    ResultsWriter(part_path(final, 1, 2)).append([record("b")])
    assert results_files(tmp_path, "x") == [final]
    assert results_parts(final) == [part_path(final, 1, 2)]


# ---------------------------------------------------------------- two gloo ranks through inference.py


def rank_worker(rank: int, world_size: int, port: int, cfg_paths: list, result_dir: str) -> None:
    """One process of a 2-rank CPU run: ``inference.main`` on each config, as torchrun starts it.

    The process group is made here so that several runs share it; ``write_scores`` is counted
    (and still called) to see which ranks score.
    """
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world_size)
    from my_affectgpt.evaluation import report

    real_write_scores, calls = report.write_scores, []

    def counting_write_scores(*args, **kwargs):
        calls.append(1)
        return real_write_scores(*args, **kwargs)

    report.write_scores = counting_write_scores
    runs = []
    for cfg_path in cfg_paths:
        calls.clear()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = inference.main(["--cfg-path", cfg_path])
        runs.append({"code": code, "scores_written": len(calls), "stdout": out.getvalue(), "stderr": err.getvalue()})
    torch.distributed.destroy_process_group()
    (Path(result_dir) / f"rank{rank}.json").write_text(json.dumps(runs))


def run_two_ranks(cfg_paths, result_dir: Path):
    """Per config, each rank's {code, scores_written, stdout, stderr}."""
    torch.multiprocessing.spawn(rank_worker, args=(2, free_port(), [str(p) for p in cfg_paths], str(result_dir)),
                                nprocs=2, join=True)
    ranks = [json.loads((result_dir / f"rank{r}.json").read_text()) for r in (0, 1)]
    return list(zip(*ranks))


@pytest.fixture(scope="module")
def tiny_checkpoint(demo_assets, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dist_run")
    cfg_path = write_config(demo_config(demo_assets, run_dir), run_dir / "train.yaml")
    assert train.main(["--cfg-path", str(cfg_path), "--options", "run.max_epoch=1", "run.iters_per_epoch=20",
                       "run.warmup_steps=5", "run.num_workers=0"]) == 0
    return run_dir


def eval_config(demo_assets: Path, run_dir: Path, out: Path) -> Path:
    cfg = demo_config(demo_assets, run_dir, shipped="eval_configs/demo.yaml")
    cfg["run"].update(output_dir=str(out), num_workers=0)
    cfg["inference"].update(test_epoch=1, max_new_tokens=12, batch_size=4)
    return write_config(cfg, out.parent / f"{out.name}.yaml")


@pytest.fixture(scope="module")
def one_process(demo_assets, tiny_checkpoint, tmp_path_factory):
    """The reference: the same inference in a single process."""
    out = tmp_path_factory.mktemp("one") / "eval"
    assert inference.main(["--cfg-path", str(eval_config(demo_assets, tiny_checkpoint, out))]) == 0
    return out


def seed_part(reference: Path, part: Path, records) -> None:
    """A killed rank's part: ``records`` (answers marked, to see they are kept), then a cut line."""
    shutil.copy(reference.with_suffix(".source.json"), part.with_suffix(".source.json"))
    part.write_text("".join(json.dumps({**r, "answer": f"seeded {r['answer']}"}) + "\n" for r in records)
                    + '{"name": "demo_test_')


@pytest.mark.slow  # two fresh interpreters, three inference runs each
def test_two_ranks_write_what_one_process_writes_and_resume_their_parts(demo_assets, tiny_checkpoint, one_process,
                                                                        tmp_path):
    reference = one_process / "results-demo" / f"{CKPT}.jsonl"
    expected = read_jsonl(reference)
    assert len(expected) == 12 and len({r["answer"] for r in expected}) > 1

    fresh, resumed, mismatched = (tmp_path / name for name in ("fresh", "resumed", "mismatched"))
    # a 2-rank run killed with half of rank 1's block written, and a part left by a 3-process run
    resumed_results = resumed / "results-demo" / f"{CKPT}.jsonl"
    resumed_results.parent.mkdir(parents=True)
    seed_part(reference, part_path(resumed_results, 1, 2), expected[6:9])
    seed_part(reference, part_path(resumed_results, 0, 3), expected[:1])
    # a leftover part made with another checkpoint: an error on both ranks, not a hang
    mismatched_part = part_path(mismatched / "results-demo" / f"{CKPT}.jsonl", 1, 2)
    mismatched_part.parent.mkdir(parents=True)
    seed_part(reference, mismatched_part, expected[6:7])
    mismatched_part.with_suffix(".source.json").write_text(json.dumps({"checkpoint": "another.pth"}))

    runs = run_two_ranks([eval_config(demo_assets, tiny_checkpoint, out) for out in (fresh, resumed, mismatched)],
                         tmp_path)

    fresh_ranks, resumed_ranks, mismatched_ranks = runs
    assert [r["code"] for r in fresh_ranks + resumed_ranks] == [0, 0, 0, 0]
    results = fresh / "results-demo" / f"{CKPT}.jsonl"
    assert results.read_text() == reference.read_text()  # same answers, same order, no duplicates
    assert sorted(p.name for p in results.parent.iterdir()) == sorted(p.name for p in reference.parent.iterdir())
    with np.load(results.with_suffix(".npz"), allow_pickle=True) as npz:
        assert npz["name2reason"].item() == {r["name"]: r["answer"] for r in expected}
    assert json.loads((fresh / "scores.json").read_text()) == json.loads((one_process / "scores.json").read_text())
    assert [r["scores_written"] for r in fresh_ranks] == [1, 0]
    assert "12 new answers" in fresh_ranks[0]["stdout"] and "checkpoint" in fresh_ranks[0]["stdout"]
    assert fresh_ranks[1]["stdout"] == ""  # info and the table on rank 0 only

    seeded = {0, 6, 7, 8}
    assert read_jsonl(resumed_results) == [
        {**r, "answer": f"seeded {r['answer']}"} if i in seeded else r for i, r in enumerate(expected)
    ]
    assert "8 new answers in" in resumed_ranks[0]["stdout"]
    assert results_parts(resumed_results) == [] and not list(resumed_results.parent.glob("*.rank*"))

    assert [r["code"] for r in mismatched_ranks] == [2, 2]
    for rank in mismatched_ranks:
        assert f"{mismatched_part} holds" in rank["stderr"] and "checkpoint: 'another.pth'" in rank["stderr"]


def test_one_process_resumes_from_the_parts_of_a_two_process_run(demo_assets, tiny_checkpoint, one_process, tmp_path):
    reference = one_process / "results-demo" / f"{CKPT}.jsonl"
    expected = read_jsonl(reference)
    out = tmp_path / "eval"
    results = out / "results-demo" / f"{CKPT}.jsonl"
    results.parent.mkdir(parents=True)
    seed_part(reference, part_path(results, 0, 2), expected[:2])
    seed_part(reference, part_path(results, 1, 2), expected[6:8])
    assert inference.main(["--cfg-path", str(eval_config(demo_assets, tiny_checkpoint, out))]) == 0
    assert read_jsonl(results) == [
        {**r, "answer": f"seeded {r['answer']}"} if i in {0, 1, 6, 7} else r for i, r in enumerate(expected)
    ]
    assert results_parts(results) == []
