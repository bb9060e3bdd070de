"""The loss on the answer tokens, with the prompt prefix every sample of a batch shares computed once.

Every pixelpilot sample of one setup starts with the same tokens: the system prompt with its
``# Tools`` block (over a thousand tokens for ``qwen3-vl`` in a browser) and the start of the first
user turn. A causal model's states over those tokens do not depend on what follows, so they are
computed once per batch, for one row, and their keys and values are shared by every row; the rest
of each row attends to them through the KV cache. Gradients flow back through the shared prefix as
through the rows' own. The result is the plain forward's, to float rounding
(``tests/test_train.py`` compares them), at a fraction of the cost when the prompt is mostly prefix.
With ``prefix_grad=False`` the shared prefix is a constant of each step instead: the same loss, but
its gradient reaches the weights only through the rows' own tokens, and the prefix's backward pass
is skipped (``pixelpilot train --no-prefix-grad``; docs/training.md says where that helps).

Logits are computed only where a label is: the LM head over Qwen's 151,936-token vocabulary is the
most expensive layer of a small model, and the prompt's positions carry no loss. With a ``vocab``
(:func:`answer_vocab`: the tokens the training answers use) the softmax runs over those tokens alone
— a few hundred instead of 151,936, which makes a small model from scratch several times cheaper to
train on CPU; the model still generates over its whole vocabulary when it is served.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from .data import IGNORE

#: A shorter shared prefix is not worth a second forward call.
MIN_SHARED = 64


@dataclass
class AnswerLoss:
    """The mean cross-entropy over the batch's answer tokens, with how many there were and, when
    asked, how many the model's top guess got right (teacher-forced)."""

    loss: Any
    tokens: int
    correct: int | None = None


def shared_prefix(batch: dict[str, Any]) -> int:
    """How many leading tokens every row of ``batch`` has in common, stopping before the first image
    token and before the position that predicts the first answer token."""
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    same = (ids == ids[:1]).all(dim=0) & mask.bool().all(dim=0)
    limit = int(same.shape[0]) if bool(same.all()) else int((~same).nonzero()[0, 0])
    images = batch["mm_token_type_ids"].any(dim=0).nonzero()
    if len(images):
        limit = min(limit, int(images[0, 0]))
    answers = (labels != IGNORE).any(dim=0).nonzero()
    if len(answers):
        limit = min(limit, int(answers[0, 0]) - 1)
    return max(limit, 0)


def answer_vocab(answers: Any, tokenizer: Any, end_id: int) -> Any:
    """The sorted token ids the ``answers`` (strings) are written with, and ``end_id``, as a tensor."""
    import torch

    ids = {end_id}
    for text in answers:
        ids.update(tokenizer(text, add_special_tokens=False)["input_ids"])
    return torch.tensor(sorted(ids), dtype=torch.long)


def _cache_kw(core: Any) -> str:
    """The name the model's forward takes its KV cache by (transformers renamed it in 5.x)."""
    return "cache" if "cache" in inspect.signature(core.forward).parameters else "past_key_values"


def answer_loss(
    model: Any,
    batch: dict[str, Any],
    *,
    share_prefix: bool = True,
    prefix_grad: bool = True,
    accuracy: bool = False,
    vocab: Any = None,
) -> AnswerLoss:
    """The loss of a Qwen3-VL (``Qwen3VLForConditionalGeneration``, or a PEFT model around one) on a
    :class:`~pixelpilot.train.data.Collator` batch; ``vocab`` (sorted token ids, a tensor) restricts
    the softmax to those tokens, which must include every label. ``prefix_grad=False`` computes the
    shared prefix without a graph (see the module docstring)."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    core, head = base.model, base.get_output_embeddings()
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    mm = batch["mm_token_type_ids"]
    vision = {k: batch[k] for k in ("pixel_values", "image_grid_thw") if k in batch}
    positions, _ = core.get_rope_index(
        input_ids=ids, mm_token_type_ids=mm, image_grid_thw=batch.get("image_grid_thw"), attention_mask=mask
    )
    rows = ids.shape[0]
    # Without prefix_grad the prefix is split off whatever its length: what carries no gradient must not
    # depend on the batch's size.
    start = shared_prefix(batch) if share_prefix and (rows > 1 or not prefix_grad) else 0
    # Activation checkpointing turns the cache off (transformers renamed the flag in 5.x).
    checkpointing = getattr(base, "is_activation_checkpointing", None)
    if checkpointing is None:
        checkpointing = getattr(base, "is_gradient_checkpointing", False)
    if not prefix_grad and (checkpointing or not share_prefix):
        raise ValueError(
            "prefix_grad=False needs the shared prefix, which share_prefix=False or checkpointing turns off"
        )
    if (start < MIN_SHARED and prefix_grad) or checkpointing:
        start = 0
    cache_kw = _cache_kw(core)
    extra: dict[str, Any] = {}
    if start:
        with torch.set_grad_enabled(prefix_grad and torch.is_grad_enabled()):
            prefix = core(input_ids=ids[:1, :start], position_ids=positions[:, :1, :start], use_cache=True)
        cache: Any = getattr(prefix, "cache", None) or getattr(prefix, "past_key_values", None)
        for layer in cache.layers:  # one row's keys and values, seen by every row
            layer.keys = layer.keys.expand(rows, -1, -1, -1)
            layer.values = layer.values.expand(rows, -1, -1, -1)
        extra = {cache_kw: cache, "use_cache": True}
    out = core(
        input_ids=ids[:, start:],
        attention_mask=mask,
        position_ids=positions[:, :, start:],
        mm_token_type_ids=mm[:, start:],
        **vision,
        **extra,
    )
    hidden = out.last_hidden_state  # rows × (length - start) × hidden
    # Position t predicts token t + 1: keep the positions whose next token is an answer token.
    targets = labels[:, start + 1 :]
    keep = targets != IGNORE
    chosen = hidden[:, :-1][keep]
    wanted = targets[keep]
    if vocab is None:
        logits = head(chosen).float()
    else:
        logits = torch.nn.functional.linear(chosen, head.weight[vocab]).float()
        wanted = torch.searchsorted(vocab, wanted)
    loss = torch.nn.functional.cross_entropy(logits, wanted)
    correct = int((logits.detach().argmax(-1) == wanted).sum()) if accuracy else None
    return AnswerLoss(loss, int(wanted.numel()), correct)
