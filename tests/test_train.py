"""``pixelpilot train`` on the tiny Qwen3-VL: the loss with the shared prefix is the plain loss, a run
writes a checkpoint the local backend serves and SGLang is told to load, a stopped run resumes from
its last checkpoint, and LoRA merges into plain weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="pixelpilot train needs the 'train' extra (trl, peft)")
pytest.importorskip("xgrammar", reason="the local backend needs the 'local' extra (xgrammar)")

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402

from pixelpilot.agent.collect import RunnerConfig, collect  # noqa: E402
from pixelpilot.evals.shapes import ShapesSuite, oracle  # noqa: E402
from pixelpilot.serving.local import ChatEncoder, LocalModel  # noqa: E402
from pixelpilot.train.data import Collator, load_export  # noqa: E402
from pixelpilot.train.loss import MIN_SHARED, answer_loss, shared_prefix  # noqa: E402
from pixelpilot.trajectories.export import export_episodes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
async def shapes_export(chromium, tmp_path_factory):
    """Six solved shapes episodes (the scripted oracle in real Chromium), exported as ``hf``."""
    root = tmp_path_factory.mktemp("shapes")
    suite = ShapesSuite()
    config = RunnerConfig(out=root / "episodes", viewport=suite.viewport, policy_factory=oracle, timeout=60)
    with suite.serve() as tasks:
        await collect(tasks, config, rollouts=6, concurrency=3)
    report = export_episodes([root / "episodes"], root / "hf", format="hf")
    assert report.samples == 6
    return root / "hf"


def test_the_shared_prefix_gives_the_plain_loss_and_gradients(shapes_export, tiny_model):
    from transformers import AutoModelForImageTextToText

    rows = load_export(shapes_export)
    batch = Collator(rows, ChatEncoder.from_pretrained(tiny_model))([{"index": i} for i in range(4)])
    assert shared_prefix(batch) >= MIN_SHARED  # the system prompt, and the first user turn's start
    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    results = []
    for share in (True, False):
        model.zero_grad()
        out = answer_loss(model, batch, share_prefix=share, accuracy=True)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out, grads))
    (shared, g1), (plain, g2) = results
    assert shared.tokens == plain.tokens == int((batch["labels"] != -100).sum())
    assert shared.correct == plain.correct
    assert torch.allclose(shared.loss, plain.loss, rtol=1e-5)
    assert g1.keys() == g2.keys() and "model.language_model.embed_tokens.weight" in g1
    for name in g2:
        assert torch.allclose(g1[name], g2[name], rtol=1e-3, atol=1e-6 * float(g2[name].abs().max())), name


def test_without_prefix_grad_the_loss_is_the_same_and_the_system_prompt_passes_no_gradient(shapes_export, tiny_model):
    """``--no-prefix-grad``: the shared prefix is a constant of the step. The loss and what the head
    learns are unchanged; what reaches the weights only through the prefix (the embedding rows of
    tokens no row has after it) is gone."""
    from transformers import AutoModelForImageTextToText

    rows = load_export(shapes_export)
    collator = Collator(rows, ChatEncoder.from_pretrained(tiny_model))
    batch = collator([{"index": i} for i in range(4)])
    start = shared_prefix(batch)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    runs = {}
    for grad in (True, False):
        model.zero_grad()
        out = answer_loss(model, batch, prefix_grad=grad)
        out.loss.backward()
        runs[grad] = (out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    (with_loss, with_grads), (without_loss, without_grads) = runs[True], runs[False]
    assert torch.allclose(with_loss, without_loss, rtol=1e-6)
    ids = batch["input_ids"]
    only_in_prefix = sorted(set(ids[0, :start].tolist()) - set(ids[:, start:].flatten().tolist()))
    assert len(only_in_prefix) > 10  # the system prompt's words
    embeddings = "model.language_model.embed_tokens.weight"
    assert float(with_grads[embeddings][only_in_prefix].abs().sum()) > 0
    assert float(without_grads[embeddings][only_in_prefix].abs().sum()) == 0
    head = "lm_head.weight"
    scale = float(with_grads[head].abs().max())
    assert torch.allclose(with_grads[head], without_grads[head], rtol=1e-4, atol=1e-6 * scale)
    # a batch of one row keeps its prompt constant too
    model.zero_grad()
    answer_loss(model, collator([{"index": 0}]), prefix_grad=False).loss.backward()
    grad = model.get_parameter(embeddings).grad
    assert grad is not None and float(grad.abs().sum()) > 0  # the row's own tokens still learn
    assert float(grad[only_in_prefix].abs().sum()) == 0


def _train(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pixelpilot.cli", "train", *args, "--no-progress", "--threads", "2"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_a_run_writes_a_checkpoint_that_is_served_and_resumes_where_it_stopped(shapes_export, tiny_model, tmp_path):
    out = tmp_path / "ckpt"
    common = [str(shapes_export), "--model", str(tiny_model), "--out", str(out), "--batch-size", "2", "--lr", "1e-3"]
    first = _train(*common, "--max-steps", "2", "--save-steps", "1")
    assert "trained 2 steps, 4 samples" in first.stdout
    record = json.loads((out / "pixelpilot-train.json").read_text())
    assert record["config"]["method"] == "full" and record["device"] == "cpu"  # full fine-tuning on CPU
    assert record["steps"] == 2 and record["samples_per_second"] > 0 and record["samples_in_data"] == 6
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    before = _weights(out)
    assert not torch.equal(before["lm_head.weight"], _weights(tiny_model)["lm_head.weight"])  # it trained

    resumed = _train(*common, "--max-steps", "3", "--save-steps", "1", "--resume")
    assert "trained 1 steps" in resumed.stdout  # steps 1 and 2 were done before
    assert json.loads((out / "pixelpilot-train.json").read_text())["total_steps"] == 3

    # What the local backend loads (and SGLang would: the command names the folder).
    model = LocalModel(out, device="cpu", threads=1)
    answer = model.generate([{"role": "user", "content": "Say something."}], max_tokens=4, temperature=0.0)
    assert answer.completion_tokens >= 1
    dry = subprocess.run(
        [sys.executable, "-m", "pixelpilot.cli", "serve", "--backend", "sglang", "--model", str(out), "--dry-run"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert dry.returncode == 0 and f"--model-path {out}" in dry.stdout
    for name in ("config.json", "tokenizer.json", "chat_template.jinja", "preprocessor_config.json"):
        assert (out / name).is_file(), name


def test_lora_is_merged_into_plain_weights(shapes_export, tiny_model, tmp_path):
    out = tmp_path / "lora"
    _train(str(shapes_export), "--model", str(tiny_model), "--out", str(out), "--method", "lora", "--max-steps", "2")
    merged, base = _weights(out), _weights(tiny_model)
    assert merged.keys() == base.keys()  # no adapter weights left: any Qwen3-VL loader reads it
    changed = [k for k in base if not torch.equal(merged[k], base[k])]
    assert changed and all("language_model.layers" in k and k.endswith("proj.weight") for k in changed)
    assert not any("visual" in k for k in changed)


def test_freezing_keeps_the_named_parts_as_they_were(shapes_export, tiny_model, tmp_path):
    out = tmp_path / "frozen"
    common = ["--max-steps", "2", "--lr", "1e-2", "--freeze", "embeddings", "--freeze", "head", "--freeze", "vision"]
    _train(str(shapes_export), "--model", str(tiny_model), "--out", str(out), *common)
    trained, base = _weights(out), _weights(tiny_model)
    for name in base:
        frozen = name.startswith(("model.visual", "lm_head", "model.language_model.embed_tokens"))
        assert torch.equal(trained[name], base[name]) == frozen, name


def test_a_time_limit_paces_the_schedule_so_the_rate_has_decayed_when_time_is_up(shapes_export, tiny_model, tmp_path):
    """A schedule planned for far more steps than the time allows still ends its cosine decay at the limit."""
    from pixelpilot.train.trainer import TrainConfig, train

    out = tmp_path / "paced"
    peak = 1e-3
    config = TrainConfig(
        data=str(shapes_export),
        model=str(tiny_model),
        out=str(out),
        max_steps=100_000,
        time_limit=0.15,
        batch_size=2,
        lr=peak,
        warmup=0.0,
        logging_steps=1,
        save_steps=100_000,
        threads=2,
        progress=False,
    )
    report = train(config)
    rates = [
        e["learning_rate"]
        for e in json.loads((out / "pixelpilot-train.json").read_text())["log"]
        if "learning_rate" in e
    ]
    assert 2 <= report.steps < 100_000 and len(rates) == report.steps
    assert max(rates) > 0.3 * peak  # it trained at a real rate on the way …
    assert rates[-1] < 0.05 * peak  # … and was near the end of the decay when the time ran out
    assert rates == sorted(rates, reverse=True)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensors[key] = f.get_tensor(key)
    return tensors


def test_attention_gain_changes_only_the_query_and_key_norms(tmp_path):
    """``build_tiny_model(attention_gain=2)`` (the demonstration's start): the same weights as the
    plain build of that seed, except the language model's q/k norms, which start at 2."""
    from pixelpilot.serving.tiny import build_tiny_model

    def weights(path: Path) -> dict[str, torch.Tensor]:
        with safe_open(str(path / "model.safetensors"), "pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}

    plain = weights(build_tiny_model(tmp_path / "plain", punctuation_bias=0.0))
    sharp = weights(build_tiny_model(tmp_path / "sharp", punctuation_bias=0.0, attention_gain=2.0))
    assert plain.keys() == sharp.keys()
    norms = [k for k in plain if "language_model" in k and k.endswith(("q_norm.weight", "k_norm.weight"))]
    assert norms and all(torch.all(plain[k] == 1) and torch.all(sharp[k] == 2) for k in norms)
    assert all(torch.equal(plain[k], sharp[k]) for k in plain if k not in norms)


def test_the_small_model_turns_its_rotary_positions_at_its_own_base(tmp_path):
    """``ModelSize.rope_theta`` reaches the rotary embedding transformers builds: the ``small`` size
    (the demonstration's model) rotates at base 10,000, a size that says nothing at Qwen3-VL's own."""
    from dataclasses import replace

    from transformers import Qwen3VLForConditionalGeneration

    from pixelpilot.serving.tiny import SMALL, TINY, build_tiny_model

    assert SMALL.rope_theta == 10_000.0 and TINY.rope_theta == 5_000_000.0
    # the small model's base on the fast-to-build tiny size, and the tiny size as it is
    for size in (replace(TINY, rope_theta=SMALL.rope_theta), TINY):
        base = size.rope_theta
        path = build_tiny_model(tmp_path / str(int(base)), size=size)
        model = Qwen3VLForConditionalGeneration.from_pretrained(path)
        inv_freq = model.model.language_model.rotary_emb.inv_freq
        half = inv_freq.numel()  # a head's frequency pairs
        expected = base ** (-torch.arange(half, dtype=torch.float64) / half)
        assert torch.allclose(inv_freq.double(), expected, rtol=1e-5)
