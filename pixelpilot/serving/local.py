"""The local backend: a Qwen3-VL checkpoint run with transformers behind SGLang's HTTP API.

    pixelpilot serve --backend transformers --model PATH_OR_ID [--port 30000]

Endpoints: ``POST /v1/chat/completions`` (OpenAI shape: text and ``image_url`` data-URL parts,
``max_tokens``, ``temperature``/``top_p``/``top_k``/``seed``, ``response_format`` of type
``json_schema`` or ``json_object``; ``usage`` with ``prompt_tokens_details.cached_tokens``, always
0 here since there is no prefix cache), ``GET /v1/models`` and ``GET /health``.

``response_format`` is enforced with xgrammar as SGLang does, with SGLang's
``--constrained-json-disable-any-whitespace`` behaviour always on: no free whitespace, compact
separators, so a weak model cannot fill its budget with spaces. Compiled grammars are cached.

It runs on CPU (or the first CUDA device when there is one), one request at a time. Images are
prepared with ``Qwen2VLImageProcessorPil`` (no torchvision needed): each ``<|image_pad|>`` of the
chat template is expanded to the image's token count, and ``mm_token_type_ids`` marks them for
M-RoPE, which is what transformers' Qwen3-VL processor does when torchvision is present.
"""

import asyncio
import base64
import io
import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_PAD = "<|image_pad|>"


class RequestError(ValueError):
    """A request the server cannot serve (a bad image, an unknown response_format); answered with 400."""


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class LocalModel:
    """A Qwen3-VL checkpoint loaded with transformers, generating under xgrammar constraints."""

    def __init__(self, path: str | Path, *, device: str | None = None, threads: int | None = None) -> None:
        import torch
        import xgrammar as xgr
        from transformers import AutoModelForImageTextToText, AutoTokenizer
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.path = str(path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r}: torch {torch.__version__} sees no CUDA device here; use cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.images = Qwen2VLImageProcessorPil.from_pretrained(self.path)
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.model = AutoModelForImageTextToText.from_pretrained(self.path, dtype=dtype).to(self.device).eval()
        self.image_token_id = self.model.config.image_token_id
        self.merge = self.images.merge_size
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        vocab = self.model.get_output_embeddings().weight.shape[0]
        info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=vocab, stop_token_ids=self.eos_ids)
        self.compiler = xgr.GrammarCompiler(info)
        self._lock = threading.Lock()

    # --- grammar --------------------------------------------------------------------------

    def grammar(self, response_format: dict[str, Any] | None) -> Any:
        """The compiled grammar for a response_format (None: unconstrained)."""
        if not response_format or response_format.get("type") == "text":
            return None
        kind = response_format.get("type")
        if kind == "json_object":
            return self.compiler.compile_builtin_json_grammar()
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema", spec.get("schema_"))
            if not isinstance(schema, dict):
                raise RequestError("response_format.json_schema.schema must be a JSON schema object")
            try:
                return self.compiler.compile_json_schema(
                    json.dumps(schema), any_whitespace=False, separators=(",", ":")
                )
            except Exception as e:
                raise RequestError(f"the JSON schema does not compile: {str(e).splitlines()[0]}") from None
        raise RequestError(f"unsupported response_format type {kind!r}; use json_schema, json_object or text")

    # --- prompt ----------------------------------------------------------------------------

    def encode(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """Chat messages -> model inputs (input_ids, pixel_values, image_grid_thw, mm_token_type_ids)."""
        torch = self.torch
        chat, images = _split_images(messages)
        text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        inputs: dict[str, Any] = {}
        if images:
            processed = self.images(images=images, return_tensors="pt")
            grid = processed["image_grid_thw"]
            counts = [int(g.prod()) // (self.merge**2) for g in grid]
            pieces = text.split(IMAGE_PAD)
            if len(pieces) != len(counts) + 1:
                raise RequestError(f"the chat template placed {len(pieces) - 1} images for {len(counts)} given")
            text = pieces[0] + "".join(IMAGE_PAD * n + p for n, p in zip(counts, pieces[1:], strict=False))
            inputs["pixel_values"] = processed["pixel_values"].to(self.device, self.model.dtype)
            inputs["image_grid_thw"] = grid.to(self.device)
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to(self.device)
        inputs["input_ids"] = ids
        inputs["attention_mask"] = torch.ones_like(ids)
        inputs["mm_token_type_ids"] = (ids == self.image_token_id).to(torch.int32)
        return inputs

    # --- generation ------------------------------------------------------------------------

    def generate(
        self,
        messages: list[dict[str, Any]],
        *,
        response_format: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> Generation:
        import xgrammar as xgr

        grammar = self.grammar(response_format)
        inputs = self.encode(messages)
        n_prompt = inputs["input_ids"].shape[1]
        processors = [xgr.contrib.hf.LogitsProcessor(grammar)] if grammar is not None else []
        sample = temperature > 0
        kwargs: dict[str, Any] = {"do_sample": sample}
        if sample:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k or 0)
        with self._lock, self.torch.inference_mode():
            if seed is not None:
                self.torch.manual_seed(seed)
            out = self.model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                logits_processor=processors,
                eos_token_id=self.eos_ids,
                pad_token_id=self.eos_ids[0],
                **kwargs,
            )
        new = out[0, n_prompt:].tolist()
        finished = bool(new) and new[-1] in self.eos_ids
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return Generation(text, n_prompt, len(new), "stop" if finished else "length")


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    eos = model.generation_config.eos_token_id
    ids = list(eos) if isinstance(eos, (list, tuple)) else [eos] if eos is not None else []
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end not in ids:
        ids.insert(0, im_end)
    return ids


def _split_images(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    """OpenAI messages -> chat-template messages with ``{"type": "image"}`` parts, plus the images."""
    from PIL import Image

    chat, images = [], []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                kind = part.get("type")
                if kind == "text":
                    parts.append({"type": "text", "text": part.get("text", "")})
                elif kind == "image_url":
                    url = (part.get("image_url") or {}).get("url", "")
                    if not url.startswith("data:") or ";base64," not in url:
                        raise RequestError("images must be base64 data URLs (data:image/png;base64,…)")
                    try:
                        img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
                        images.append(img.convert("RGB"))
                    except Exception as e:
                        raise RequestError(f"an image could not be decoded: {e}") from None
                    parts.append({"type": "image"})
                else:
                    raise RequestError(f"unsupported content part type {kind!r}")
            chat.append({"role": m.get("role", "user"), "content": parts})
        else:
            chat.append({"role": m.get("role", "user"), "content": content or ""})
    return chat, images


def create_app(model: LocalModel, served_name: str) -> Any:
    """The FastAPI app serving ``model`` under the name ``served_name``."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(title="pixelpilot local backend")

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse(
            {"error": {"message": message, "type": "invalid_request_error", "code": status}}, status_code=status
        )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": served_name, "object": "model", "owned_by": "pixelpilot"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        try:
            body = await request.json()
        except Exception:
            return error(400, "the request body is not JSON")
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            return error(400, "'messages' must be a non-empty list")
        if body.get("stream"):
            return error(400, "streaming is not supported by the local backend")
        t0 = time.time()
        try:
            gen = await asyncio.to_thread(
                model.generate,
                messages,
                response_format=body.get("response_format"),
                max_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or 512),
                temperature=float(body.get("temperature", 1.0)),
                top_p=float(body.get("top_p", 1.0)),
                top_k=body.get("top_k"),
                seed=body.get("seed"),
            )
        except RequestError as e:
            return error(400, str(e))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(t0),
            "model": served_name,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": gen.text}, "finish_reason": gen.finish_reason}
            ],
            "usage": {
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": gen.completion_tokens,
                "total_tokens": gen.prompt_tokens + gen.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        }

    return app


def serve(
    model_path: str,
    *,
    host: str = "127.0.0.1",
    port: int = 30000,
    served_name: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    log_level: str = "warning",
) -> None:
    """Load the checkpoint and serve it until interrupted (blocking)."""
    import uvicorn

    model = LocalModel(model_path, device=device, threads=threads)
    name = served_name or Path(model_path).name or model_path
    print(f"pixelpilot local backend: {model_path} on {model.device}, http://{host}:{port}/v1", flush=True)
    uvicorn.run(create_app(model, name), host=host, port=port, log_level=log_level)
