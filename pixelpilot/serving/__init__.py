"""Talking to models: the OpenAI-compatible client, the SGLang launcher, the local CPU backend.

``local`` (transformers + xgrammar), ``sglang`` and ``tiny`` are imported on use: they need the
``local`` extra or a GPU machine.
"""

from .client import (
    PROFILES,
    Completion,
    ModelClient,
    Sampling,
    ServingError,
    TokenUsage,
    profile_for,
    wait_until_ready,
)
from .images import DEFAULT_MAX_TOKENS, ModelImage, image_tokens, prepare_image, smart_resize

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "PROFILES",
    "Completion",
    "ModelClient",
    "ModelImage",
    "Sampling",
    "ServingError",
    "TokenUsage",
    "image_tokens",
    "prepare_image",
    "profile_for",
    "smart_resize",
    "wait_until_ready",
]
