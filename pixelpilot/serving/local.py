"""The local backend: a Qwen3-VL checkpoint run with transformers behind SGLang's HTTP API.

    pixelpilot serve --backend transformers --model PATH_OR_ID [--port 30000]

Endpoints: ``POST /v1/chat/completions`` (OpenAI shape: text and ``image_url`` data-URL parts,
``max_completion_tokens`` or ``max_tokens``, ``temperature``/``top_p``/``top_k``/``seed``,
``presence_penalty``/``repetition_penalty``; one constraint: ``ebnf`` in the body, or
``response_format`` of type ``json_schema`` or ``json_object``; ``usage`` with
``prompt_tokens_details.cached_tokens``, always 0 here since there is no prefix cache),
``GET /v1/models`` and ``GET /health``.

Constraints compile the way SGLang (with ``--constrained-json-disable-any-whitespace``) compiles
them, so both servers admit the same strings: an ``ebnf`` grammar as it is, a JSON schema with no
free whitespace and no ``separators`` argument (xgrammar then writes ``", "`` and ``": "``), and
``json_object`` as the schema ``{"type": "object"}``. When the chat template's generation prompt
opens a ``<think>`` (Thinking checkpoints), the grammar applies after ``</think>``, and the
reasoning comes back in ``reasoning_content``, as SGLang's ``--reasoning-parser qwen3`` does. The
penalties act on the generated tokens only, as SGLang's do.

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
THINK_END = "</think>"


class RequestError(ValueError):
    """A request the server cannot serve (a bad image, an unknown response_format); answered with 400."""


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    #: What a Thinking checkpoint wrote before ``</think>`` (then ``text`` is what follows it).
    reasoning: str | None = None


def compile_constraint(compiler: Any, body: dict[str, Any]) -> Any:
    """The compiled grammar of a request's constraint (None: unconstrained), compiled as SGLang does.

    Raises RequestError for more than one constraint, an unknown kind, or one that does not compile.
    """
    fmt = body.get("response_format") or {}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    given = [
        k
        for k, present in (
            ("ebnf", body.get("ebnf")),
            ("regex", body.get("regex")),
            ("response_format", kind not in (None, "text")),
        )
        if present
    ]
    if len(given) > 1:
        raise RequestError(f"only one constraint per request; got {', '.join(given)}")
    try:
        if body.get("ebnf"):
            return compiler.compile_grammar(str(body["ebnf"]))
        if body.get("regex"):
            return compiler.compile_regex(str(body["regex"]))
        if kind in (None, "text"):
            return None
        if kind == "json_object":
            return compiler.compile_json_schema('{"type": "object"}', any_whitespace=False)
        if kind == "json_schema":
            spec = fmt.get("json_schema") or {}
            schema = spec.get("schema", spec.get("schema_"))
            if not isinstance(schema, dict):
                raise RequestError("response_format.json_schema.schema must be a JSON schema object")
            return compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
    except RequestError:
        raise
    except Exception as e:
        raise RequestError(f"the constraint does not compile: {str(e).splitlines()[0]}") from None
    raise RequestError(f"unsupported response_format type {kind!r}; use json_schema, json_object or text, or ebnf")


class Decoding:
    """A logits processor for one request: the penalties on the tokens generated so far, then the
    grammar's mask — from the first token, or from the one after ``</think>`` when ``think_end`` is given."""

    def __init__(
        self,
        compiled: Any,
        n_prompt: int,
        vocab: int,
        *,
        think_end: int | None = None,
        presence_penalty: float = 0.0,
        repetition_penalty: float = 1.0,
    ) -> None:
        import xgrammar as xgr

        self.xgr = xgr
        self.matcher = xgr.GrammarMatcher(compiled) if compiled is not None else None
        self.bitmask: Any = xgr.allocate_token_bitmask(1, vocab) if compiled is not None else None
        self.n_prompt = n_prompt
        self.think_end = think_end
        self.answer_from: int | None = 0 if think_end is None else None
        self.fed = 0
        self.presence = presence_penalty
        self.repetition = repetition_penalty

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        generated: list[int] = input_ids[0, self.n_prompt :].tolist()
        if generated and (self.presence or self.repetition != 1.0):
            seen = sorted(set(generated))
            picked = scores[0, seen]
            if self.repetition != 1.0:
                picked = picked.where(picked < 0, picked / self.repetition)
                picked = picked.where(picked >= 0, picked * self.repetition)
            scores[0, seen] = picked - self.presence
        if self.matcher is None:
            return scores
        if self.answer_from is None and self.think_end in generated:
            self.answer_from = generated.index(self.think_end) + 1
        if self.answer_from is None:
            return scores  # still reasoning: unconstrained
        for token in generated[self.answer_from + self.fed :]:
            if not self.matcher.accept_token(token):
                raise RuntimeError(f"the grammar refused token {token} it had allowed")
            self.fed += 1
        self.matcher.fill_next_token_bitmask(self.bitmask)
        self.xgr.apply_token_bitmask_inplace(scores, self.bitmask.to(scores.device))
        return scores


class ChatEncoder:
    """Chat messages and their images -> the token ids and pixels a Qwen3-VL checkpoint is given.

    The checkpoint's own chat template renders the messages; ``Qwen2VLImageProcessorPil`` prepares
    each image at its own size (sides already multiples of 32 stay as they are); each
    ``<|image_pad|>`` becomes the image's token count. The local backend encodes every request with
    it and ``pixelpilot train`` every sample's prompt, so a trained model is fed what it is served.
    """

    def __init__(self, tokenizer: Any, images: Any) -> None:
        self.tokenizer = tokenizer
        self.images = images
        self.merge = int(images.merge_size)
        pad: Any = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        self.image_token_id = int(pad)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "ChatEncoder":
        """The tokenizer (with its chat template) and image processor of a checkpoint directory or model id."""
        from transformers import AutoTokenizer
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        return cls(AutoTokenizer.from_pretrained(str(path)), Qwen2VLImageProcessorPil.from_pretrained(str(path)))

    def prompt(self, chat: list[dict[str, Any]], images: list[Any]) -> dict[str, Any]:
        """Chat-template messages (image parts as ``{"type": "image"}``) and their PIL images, in
        order -> ``input_ids`` (1 × n), ``pixel_values`` and ``image_grid_thw`` (when there are
        images), and ``thinking``: whether the generation prompt opens a ``<think>``."""
        text: str = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        # The generation prompt opens a <think> (a Thinking checkpoint): the answer follows </think>.
        tail = text.rsplit("<|im_start|>assistant", 1)[-1]
        out: dict[str, Any] = {"thinking": "<think>" in tail and THINK_END not in tail}
        if images:
            processed = self.images(images=images, return_tensors="pt")
            grid = processed["image_grid_thw"]
            counts = [int(g.prod()) // (self.merge**2) for g in grid]
            pieces = text.split(IMAGE_PAD)
            if len(pieces) != len(counts) + 1:
                raise RequestError(f"the chat template placed {len(pieces) - 1} images for {len(counts)} given")
            text = pieces[0] + "".join(IMAGE_PAD * n + p for n, p in zip(counts, pieces[1:], strict=False))
            out["pixel_values"] = processed["pixel_values"]
            out["image_grid_thw"] = grid
        out["input_ids"] = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        return out


class LocalModel:
    """A Qwen3-VL checkpoint loaded with transformers, generating under xgrammar constraints."""

    def __init__(self, path: str | Path, *, device: str | None = None, threads: int | None = None) -> None:
        import torch
        import xgrammar as xgr
        from transformers import AutoModelForImageTextToText

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.path = str(path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r}: torch {torch.__version__} sees no CUDA device here; use cpu")
        self.encoder = ChatEncoder.from_pretrained(self.path)
        self.tokenizer: Any = self.encoder.tokenizer
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        auto: Any = AutoModelForImageTextToText  # its stubs do not take a path
        self.model: Any = auto.from_pretrained(self.path, dtype=dtype).to(self.device).eval()
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.vocab = vocab = int(self.model.get_output_embeddings().weight.shape[0])
        think_end: Any = self.tokenizer.convert_tokens_to_ids(THINK_END)
        self.think_end_id = int(think_end)
        info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=vocab, stop_token_ids=self.eos_ids)
        self.compiler = xgr.GrammarCompiler(info)
        self._lock = threading.Lock()

    # --- grammar --------------------------------------------------------------------------

    def grammar(self, body: dict[str, Any]) -> Any:
        """The compiled grammar of a request body's constraint (None: unconstrained)."""
        return compile_constraint(self.compiler, body)

    # --- prompt ----------------------------------------------------------------------------

    def encode(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """Chat messages -> model inputs (input_ids, pixel_values, image_grid_thw, mm_token_type_ids),
        plus ``thinking``: whether the generation prompt opens a ``<think>``."""
        torch = self.torch
        chat, images = _split_images(messages)
        inputs = self.encoder.prompt(chat, images)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.device, self.model.dtype)
            inputs["image_grid_thw"] = inputs["image_grid_thw"].to(self.device)
        ids = inputs["input_ids"] = inputs["input_ids"].to(self.device)
        inputs["attention_mask"] = torch.ones_like(ids)
        inputs["mm_token_type_ids"] = (ids == self.encoder.image_token_id).to(torch.int32)
        return inputs

    # --- generation ------------------------------------------------------------------------

    def generate(
        self,
        messages: list[dict[str, Any]],
        *,
        constraint: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        presence_penalty: float = 0.0,
        repetition_penalty: float = 1.0,
    ) -> Generation:
        """One answer. ``constraint`` holds the request's ``ebnf`` / ``regex`` / ``response_format``."""
        compiled = self.grammar(constraint or {})
        inputs = self.encode(messages)
        thinking = inputs.pop("thinking")
        n_prompt = inputs["input_ids"].shape[1]
        decoding = Decoding(
            compiled,
            n_prompt,
            self.vocab,
            think_end=self.think_end_id if thinking else None,
            presence_penalty=presence_penalty,
            repetition_penalty=repetition_penalty,
        )
        sample = temperature > 0
        kwargs: dict[str, Any] = {"do_sample": sample}
        if sample:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k if top_k and top_k > 0 else 0)
        with self._lock, self.torch.inference_mode():
            if seed is not None:
                self.torch.manual_seed(seed)
            out = self.model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                logits_processor=[decoding],
                eos_token_id=self.eos_ids,
                pad_token_id=self.eos_ids[0],
                **kwargs,
            )
        new = out[0, n_prompt:].tolist()
        finished = bool(new) and new[-1] in self.eos_ids
        gen = Generation("", n_prompt, len(new), "stop" if finished else "length")
        if thinking:
            # As SGLang's qwen3 reasoning parser: the reasoning apart, the answer after </think>.
            if self.think_end_id in new:
                cut = new.index(self.think_end_id)
                gen.reasoning = self.tokenizer.decode(new[:cut], skip_special_tokens=True).strip()
                gen.text = self.tokenizer.decode(new[cut + 1 :], skip_special_tokens=True)
            else:
                gen.reasoning = self.tokenizer.decode(new, skip_special_tokens=True).strip()
        else:
            gen.text = self.tokenizer.decode(new, skip_special_tokens=True)
        return gen


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


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


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
                constraint={k: body[k] for k in ("ebnf", "regex", "response_format") if body.get(k) is not None},
                max_tokens=int(body.get("max_completion_tokens") or body.get("max_tokens") or 512),
                temperature=float(_or(body.get("temperature"), 1.0)),
                top_p=float(_or(body.get("top_p"), 1.0)),
                top_k=body.get("top_k"),
                seed=body.get("seed"),
                presence_penalty=float(_or(body.get("presence_penalty"), 0.0)),
                repetition_penalty=float(_or(body.get("repetition_penalty"), 1.0)),
            )
        except (RequestError, ValueError, TypeError) as e:
            return error(400, str(e))
        message: dict[str, Any] = {"role": "assistant", "content": gen.text}
        if gen.reasoning is not None:
            message["reasoning_content"] = gen.reasoning
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(t0),
            "model": served_name,
            "choices": [{"index": 0, "message": message, "finish_reason": gen.finish_reason}],
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
