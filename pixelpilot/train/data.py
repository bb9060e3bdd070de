"""Training samples from an ``hf`` export, encoded exactly as the local backend encodes a request.

Each row of the export (``messages`` in TRL's vision layout, ``images`` in order) is the request a
step was sent plus the answer it teaches. Its prompt — every message but the last — goes through
:class:`~pixelpilot.serving.local.ChatEncoder`, the code that turns a request into token ids and
pixels in ``pixelpilot serve --backend transformers``; the answer's tokens and ``<|im_end|>``
follow the generation prompt, and only they carry a loss. So the model is trained on the tokens it
is served, which ``tests/test_train_feed.py`` checks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..serving.local import ChatEncoder

#: The label of a position that carries no loss (the prompt, the padding), as transformers has it.
IGNORE = -100


class TrainDataError(ValueError):
    """Training data that cannot be used (no export there, a row without an answer …); the message says why."""


def load_export(path: str | os.PathLike[str]) -> Any:
    """The rows of an ``hf`` export folder (``pixelpilot export -f hf``) as a datasets.Dataset."""
    import datasets

    folder = Path(path)
    files = sorted((folder / "data").glob("*.parquet")) if folder.is_dir() else []
    if not files:
        raise TrainDataError(
            f"{path}: no hf export here (expected data/*.parquet; write one with `pixelpilot export -f hf`)"
        )
    return datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")


def chat_of(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Export messages as the chat template takes them: text parts and ``{"type": "image"}`` parts
    (the export's Parquet schema gives image parts a ``text`` of None)."""
    chat = []
    for m in messages:
        content = m["content"]
        if isinstance(content, str):
            chat.append({"role": m["role"], "content": content})
            continue
        parts = [{"type": "image"} if p["type"] == "image" else {"type": "text", "text": p["text"]} for p in content]
        chat.append({"role": m["role"], "content": parts})
    return chat


@dataclass
class SampleEncoder:
    """One export row -> ``input_ids`` (prompt, then answer and ``<|im_end|>``), ``labels`` (the
    answer's tokens, :data:`IGNORE` elsewhere), ``pixel_values`` and ``image_grid_thw``."""

    encoder: ChatEncoder

    def __post_init__(self) -> None:
        end: Any = self.encoder.tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.end_id = int(end)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        messages = row["messages"]
        if not messages or messages[-1]["role"] != "assistant":
            raise TrainDataError(f"sample {row.get('id', '?')}: the last message must be the assistant's answer")
        answer = "".join(p["text"] or "" for p in messages[-1]["content"] if p["type"] == "text")
        images = [img.convert("RGB") for img in row.get("images") or []]
        prompt = self.encoder.prompt(chat_of(messages[:-1]), images)
        if prompt["thinking"]:
            raise TrainDataError(
                "the chat template opens <think> for the answer (a Thinking checkpoint); train an Instruct checkpoint"
            )
        prompt_ids: list[int] = prompt["input_ids"][0].tolist()
        target = list(self.encoder.tokenizer(answer, add_special_tokens=False)["input_ids"]) + [self.end_id]
        out = {
            "input_ids": prompt_ids + target,
            "labels": [IGNORE] * len(prompt_ids) + target,
        }
        if "pixel_values" in prompt:
            out["pixel_values"] = prompt["pixel_values"]
            out["image_grid_thw"] = prompt["image_grid_thw"]
        return out


class Collator:
    """Encodes a batch of export rows (given by index) and pads it on the right: ``input_ids``,
    ``attention_mask``, ``labels``, ``mm_token_type_ids``, and the batch's images in order."""

    def __init__(self, rows: Any, encoder: ChatEncoder) -> None:
        self.rows = rows
        self.encode = SampleEncoder(encoder)
        pad: Any = encoder.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.encode.end_id)
        self.image_token_id = encoder.image_token_id

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        samples = [self.encode(self.rows[int(e["index"])]) for e in examples]
        width = max(len(s["input_ids"]) for s in samples)
        ids = torch.full((len(samples), width), self.pad_id, dtype=torch.long)
        labels = torch.full_like(ids, IGNORE)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(samples):
            n = len(s["input_ids"])
            ids[i, :n] = torch.tensor(s["input_ids"])
            labels[i, :n] = torch.tensor(s["labels"])
            mask[i, :n] = 1
        batch: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "mm_token_type_ids": (ids == self.image_token_id).to(torch.int32),
        }
        pixels = [s["pixel_values"] for s in samples if "pixel_values" in s]
        if pixels:
            batch["pixel_values"] = torch.cat(pixels)
            batch["image_grid_thw"] = torch.cat([s["image_grid_thw"] for s in samples if "image_grid_thw" in s])
        return batch
