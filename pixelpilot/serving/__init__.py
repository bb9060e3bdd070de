"""Talking to models: the OpenAI-compatible client, the SGLang launcher, the local CPU backend.

``local`` (transformers + xgrammar), ``sglang`` and ``tiny`` are imported on use: they need the
``local`` extra or a GPU machine.
"""

from .client import (
    Completion,
    ModelClient,
    Sampling,
    ServingError,
    TokenUsage,
    is_thinking,
    wait_until_ready,
)
from .images import DEFAULT_MAX_TOKENS, ModelImage, image_tokens, prepare_image, smart_resize

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "Completion",
    "ModelClient",
    "ModelImage",
    "Sampling",
    "ServingError",
    "TokenUsage",
    "image_tokens",
    "prepare_image",
    "is_thinking",
    "smart_resize",
    "wait_until_ready",
]
