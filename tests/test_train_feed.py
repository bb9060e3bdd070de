"""Train = inference, one level down: for every step, the token ids and pixels ``pixelpilot train``
feeds the model are those the local backend (``pixelpilot serve --backend transformers``) builds
from the request ModelPolicy sent at that step.

The episodes and their requests are test_train_inference's: one driven by the tiny Qwen3-VL over the
local backend (with screenshots leaving its history), one scripted, with the requests a ModelPolicy
would have sent for its steps. Each is exported as ``hf``; the trainer's collator encodes each
sample; the backend's own encoder encodes each request.
"""

from __future__ import annotations

import pytest

pytest.importorskip("trl", reason="pixelpilot train needs the 'train' extra (trl, peft)")
pytest.importorskip("xgrammar", reason="the local backend needs the 'local' extra (xgrammar)")

import torch  # noqa: E402
from test_train_inference import episodes  # noqa: E402, F401  (a fixture: the recorded episodes and requests)

from pixelpilot.serving.local import ChatEncoder, LocalModel  # noqa: E402
from pixelpilot.train.data import IGNORE, Collator, load_export  # noqa: E402
from pixelpilot.trajectories.export import export_episodes  # noqa: E402


@pytest.fixture(scope="module")
def served(tiny_model):
    """The local backend's model, as `pixelpilot serve` loads it."""
    return LocalModel(tiny_model, device="cpu", threads=1)


@pytest.mark.parametrize("which", ["model", "script"])
def test_the_trainer_feeds_the_model_the_tokens_and_pixels_it_is_served(episodes, served, which, tmp_path):  # noqa: F811
    episode, bodies = episodes[which]
    report = export_episodes([episode], tmp_path, format="hf", statuses=None, history_images=2)
    assert report.samples == len(episode.steps) == len(bodies)
    rows = load_export(tmp_path)
    collate = Collator(rows, ChatEncoder.from_pretrained(served.path))
    tokenizer = served.tokenizer
    images_seen = []
    for i, body in enumerate(bodies):
        request = served.encode(body["messages"])
        fed = collate([{"index": i}])
        prompt = request["input_ids"][0].tolist()
        n = len(prompt)
        ids, labels = fed["input_ids"][0], fed["labels"][0]
        assert ids[:n].tolist() == prompt, (which, i)
        assert (labels[:n] == IGNORE).all()  # no loss on what the model is given
        answer = rows[i]["messages"][-1]["content"][0]["text"]
        assert tokenizer.decode(ids[n:]) == answer + "<|im_end|>"  # the answer, then the end of the turn
        assert labels[n:].tolist() == ids[n:].tolist()  # every answer token carries the loss
        assert torch.equal(fed["mm_token_type_ids"][0, :n], request["mm_token_type_ids"][0].cpu())
        assert torch.equal(fed["image_grid_thw"], request["image_grid_thw"].cpu())
        assert torch.equal(fed["pixel_values"], request["pixel_values"].cpu())
        if which == "model":
            assert answer == episode.steps[i].raw_output  # the model's own text
        images_seen.append(len(fed["image_grid_thw"]))
    assert max(images_seen) > 1  # requests with history screenshots were compared too

    # A padded batch of every sample holds each sample as it is alone.
    batch = collate([{"index": i} for i in range(len(bodies))])
    for i in range(len(bodies)):
        alone = collate([{"index": i}])
        n = alone["input_ids"].shape[1]
        assert torch.equal(batch["input_ids"][i, :n], alone["input_ids"][0])
        assert torch.equal(batch["labels"][i, :n], alone["labels"][0])
        assert (batch["labels"][i, n:] == IGNORE).all() and (batch["attention_mask"][i, n:] == 0).all()
    assert torch.equal(
        batch["pixel_values"], torch.cat([collate([{"index": i}])["pixel_values"] for i in range(len(bodies))])
    )
