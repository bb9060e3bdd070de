"""Talking to models: the OpenAI-compatible client, the SGLang launcher, the local CPU backend."""
