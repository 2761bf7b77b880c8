"""Checkpoints written by the ORIGINAL AffectGPT give the original's own numbers here.

The reference (``affectgpt_reference/``, see tests/fixtures/PROVENANCE.md for how to get it)
holds, for two configs (``attention`` and ``qformer`` Multi fusion), a checkpoint the original
runner wrote after a few steps on tiny stand-in models, the original collater's batch, the
original model's eval-mode loss and logits on it, and the original inference path's greedy
answer. Each test loads the reference's own config with only its paths changed.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import inference
from my_affectgpt.common.config import load_config
from my_affectgpt.common.config import main as config_main
from my_affectgpt.datasets.builders import MERCaptionPlusBuilder
from my_affectgpt.datasets.collate import collate
from my_affectgpt.models.affectgpt import AffectGPT
from my_affectgpt.models.trained_weights import load_trained_weights

CASES = ("attention", "qformer")


def reference_config(reference: Path, case: str, tmp_path: Path, inference_block: dict | None = None) -> Path:
    """The reference's config.yaml with its paths changed, and nothing else."""
    raw = OmegaConf.to_container(OmegaConf.load(reference / case / "config.yaml"))
    models, data = reference / case / "models", reference / "attention" / "data"  # both cases trained on it
    raw["model"]["llama_model"] = str(models / "tiny-qwen25")
    raw["model"]["qformer_config"] = str(models / "bert-base-uncased")
    block = raw["datasets"]["mercaptionplus"]
    block["data_root"] = str(data / "mer2025-dataset")
    block["preextracted_root"] = str(data / "preextracted_features" / "mercaptionplus")
    raw["run"]["output_dir"] = str(tmp_path / "out")
    raw["inference"]["base_root"] = str(tmp_path / "results")  # the original's results root: output/results
    raw["inference"].update(inference_block or {})
    path = tmp_path / f"{case}.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(raw)))
    return path


def checkpoint(reference: Path, case: str) -> Path:
    (path,) = (reference / case).glob("checkpoint_*.pth")
    return path


@pytest.mark.parametrize("case", CASES)
def test_reference_config_passes_check_with_paths_changed(affectgpt_reference, case, tmp_path):
    assert config_main(["--check", str(reference_config(affectgpt_reference, case, tmp_path))]) == 0


def _reference_batch(cfg, reference_batch):
    """Our batch for the reference's two samples, with the targets the original drew for them
    (sample 1: the reasoning, sample 2: the open-set labels; its ``hybird`` drew them at random)."""
    samples = []
    for index, label_type in enumerate(("description", "ovlabel")):
        cfg.datasets["mercaptionplus"].label_type = label_type
        (dataset,) = MERCaptionPlusBuilder(cfg, "mercaptionplus").build().values()
        # the reference sample is the one whose face features are in the reference batch
        position = next(i for i in range(len(dataset))
                        if torch.equal(dataset[i]["face"], reference_batch["faces"][index]))
        samples.append(dataset[position])
    return collate(samples)


@pytest.mark.parametrize("case", CASES)
def test_original_checkpoint_gives_the_original_loss_and_logits(affectgpt_reference, case, tmp_path):
    cfg = load_config(reference_config(affectgpt_reference, case, tmp_path))
    model = AffectGPT.from_config(cfg)
    missing, unexpected = load_trained_weights(model, checkpoint(affectgpt_reference, case))  # strict
    assert missing == [] and unexpected == []
    model.eval()
    reference_batch = torch.load(affectgpt_reference / case / "batch.pt", weights_only=False)
    expected = torch.load(affectgpt_reference / case / "outputs.pt", weights_only=False)
    with torch.no_grad():
        inputs = model.llm_inputs(_reference_batch(cfg, reference_batch))
        out = model.llama_model(**inputs)
    assert torch.equal(inputs["labels"], reference_batch["labels"])
    assert torch.equal(inputs["attention_mask"], reference_batch["attention_masks"])
    torch.testing.assert_close(inputs["inputs_embeds"], expected["inputs_embeds"], atol=1e-5, rtol=0)
    assert abs(out.loss.item() - expected["loss"].item()) <= 1e-4
    assert (out.logits - expected["logits"]).abs().max().item() <= 1e-4


@pytest.mark.parametrize("case", CASES)
def test_inference_gives_the_original_greedy_answer_alone_and_in_one_batch(affectgpt_reference, case, tmp_path):
    generation = json.loads((affectgpt_reference / case / "generation.json").read_text())
    answers = {}
    for batch_size in (1, 4):
        out = tmp_path / f"bs{batch_size}"
        cfg_path = reference_config(affectgpt_reference, case, tmp_path, {
            "ckpt": str(checkpoint(affectgpt_reference, case)), "batch_size": batch_size, "max_new_tokens": 12,
        })
        options = ["datasets.mercaptionplus.split=test", f"inference.base_root={out}/results", "run.num_workers=0"]
        assert inference.main(["--cfg-path", str(cfg_path), "--dataset", "mercaptionplus", "--options", *options]) == 0
        # the original's layout: {base_root}-{dataset}/{checkpoint folder}/{checkpoint}.npz (+ our .jsonl)
        (results,) = (out / "results-mercaptionplus" / case).glob("*.jsonl")
        assert results.with_suffix(".npz").is_file()
        answers[batch_size] = {r["name"]: r["answer"] for r in map(json.loads, results.read_text().splitlines())}
    assert len(answers[1]) == 4 and answers[1] == answers[4]
    # the reference prompt is sample_00000001's (its subtitle)
    assert "I can't believe you did this to me!" in generation["prompt"]
    assert answers[1]["sample_00000001"] == generation["response"]
