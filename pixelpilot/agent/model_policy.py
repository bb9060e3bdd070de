"""``ModelPolicy``: a vision-language model behind an OpenAI-compatible server chooses each action."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from ..actions import ACTIONS_BY_ENV, ActionParseError, action_schema, parse_output
from ..serving.client import ModelClient, Sampling, ServingError, TokenUsage
from ..serving.images import DEFAULT_MAX_TOKENS, ModelImage, prepare_image
from ..trajectories import Usage
from .policy import Decision, ModelError, Policy, StepContext
from .prompt import DROP_BLOCK, Mode, PromptBuilder, screenshot_key

_IMAGE_CACHE = 64  # resized screenshots kept by hash: enough for keep_images + drop_block


class ModelPolicy(Policy):
    """Asks a model for each step's action, over HTTP.

    >>> policy = ModelPolicy("http://127.0.0.1:30000/v1")                      # doctest: +SKIP
    >>> episode = await Agent(BrowserEnv(), policy).run("Add a to-do 'milk'")  # doctest: +SKIP

    ``client`` is a URL, a list of URLs (a pool) or a shared ``ModelClient``. ``mode`` picks the
    answer format: ``"json_schema"`` (constrained JSON, the default) or ``"tool_call"`` (Qwen's
    ``computer_use`` / ``mobile_use`` function calls, for servers without constrained decoding).
    ``actions`` narrows the action set (default: all the env kind accepts); ``tools`` adds
    ``(name, parameters_schema)`` tools. An answer that does not parse is asked for once more with
    the parse error appended; a server that stays unreachable or broken, or a second bad answer,
    raises ``ModelError`` — the Agent then ends the episode as ``model_error`` and saves it.

    One ModelPolicy drives one episode at a time (it pins the episode to a server of the pool);
    episodes run side by side use one ModelPolicy each, sharing a ``ModelClient``.
    """

    def __init__(
        self,
        client: ModelClient | str | Sequence[str],
        *,
        model: str | None = None,
        mode: Mode = "json_schema",
        keep_images: int = 3,
        drop_block: int = DROP_BLOCK,
        max_image_tokens: int = DEFAULT_MAX_TOKENS,
        max_tokens: int = 512,
        sampling: Sampling | None = None,
        actions: Sequence[str] | None = None,
        tools: Sequence[tuple[str, dict[str, Any]]] = (),
        reask: bool = True,
    ) -> None:
        if mode not in ("json_schema", "tool_call"):
            raise ValueError(f"unknown mode {mode!r}; expected 'json_schema' or 'tool_call'")
        self._owns_client = not isinstance(client, ModelClient)
        self.client = client if isinstance(client, ModelClient) else ModelClient(client, model=model)
        self.mode: Mode = mode
        self.keep_images = keep_images
        self.drop_block = drop_block
        self.max_image_tokens = max_image_tokens
        self.max_tokens = max_tokens
        self.sampling = sampling
        self.actions = tuple(actions) if actions is not None else None
        self.tools = tuple(tools)
        self.reask = reask
        self._images: OrderedDict[str, ModelImage] = OrderedDict()
        self._episode: str | None = None

    def prompt(self, kind: str, grid: Any) -> PromptBuilder:
        return PromptBuilder(
            kind=kind,
            mode=self.mode,
            keep_images=self.keep_images,
            drop_block=self.drop_block,
            grid=grid,
            actions=self.actions,
            tools=self.tools,
            images=self._images,
        )

    def response_format(self, kind: str) -> dict[str, Any] | None:
        """The ``response_format`` sent in json_schema mode (None in tool_call mode)."""
        if self.mode != "json_schema":
            return None
        return {
            "type": "json_schema",
            "json_schema": {
                "name": f"{kind}_action",
                "strict": True,
                "schema": action_schema(kind, actions=self.actions, tools=self.tools),
            },
        }

    async def decide(self, ctx: StepContext) -> Decision:
        if ctx.index == 0 or self._episode is None:
            if self._episode is not None:
                self.client.release(self._episode)
            self._episode = uuid.uuid4().hex
        kind = ctx.env.kind
        allowed = set(self.actions or ACTIONS_BY_ENV[kind]) | ({"tool"} if self.tools else set())
        image = self._image(ctx.observation)
        messages = self.prompt(kind, ctx.grid).messages(ctx.task, ctx.history, (ctx.observation, image), ctx.notes)
        fmt = self.response_format(kind)

        usage = Usage()
        answer = await self._ask(messages, fmt)
        usage = usage + _usage(answer.usage)
        try:
            parsed = _parse(answer.text, ctx.pointer, allowed)
        except ActionParseError as first:
            if not self.reask:
                raise ModelError(f"the model's answer could not be used: {first}") from None
            retry = messages + [
                {"role": "assistant", "content": answer.text},
                {
                    "role": "user",
                    "content": f"That answer could not be used: {first}. Answer again with exactly one valid action.",
                },
            ]
            answer = await self._ask(retry, fmt)
            usage = usage + _usage(answer.usage)
            try:
                parsed = _parse(answer.text, ctx.pointer, allowed)
            except ActionParseError as second:
                raise ModelError(f"the model's answer could not be used, twice: {second}") from None
        return Decision(
            action=parsed.action,
            thought=parsed.thought,
            raw=answer.text,
            usage=usage,
            model_image=(image.width, image.height),
            extra={
                "model": answer.model,
                "server": answer.server,
                "attempts": answer.attempts,
                "latency_ms": round(answer.latency_ms, 1),
                "finish_reason": answer.finish_reason,
            },
        )

    async def _ask(self, messages: list[dict[str, Any]], fmt: dict[str, Any] | None) -> Any:
        try:
            return await self.client.complete(
                messages, response_format=fmt, max_tokens=self.max_tokens, sampling=self.sampling, episode=self._episode
            )
        except ServingError as e:
            raise ModelError(str(e)) from None

    def _image(self, obs: Any) -> ModelImage:
        key = screenshot_key(obs)
        image = self._images.get(key)
        if image is None:
            image = prepare_image(obs.png, max_tokens=self.max_image_tokens)
            self._images[key] = image
            while len(self._images) > max(_IMAGE_CACHE, self.keep_images + self.drop_block):
                self._images.popitem(last=False)
        else:
            self._images.move_to_end(key)
        return image

    async def aclose(self) -> None:
        """Close the HTTP client when this policy created it (a shared one stays open)."""
        if self._episode is not None:
            self.client.release(self._episode)
            self._episode = None
        if self._owns_client:
            await self.client.aclose()


def _parse(text: str, pointer: tuple[int, int] | None, allowed: set[str]) -> Any:
    parsed = parse_output(text, pointer=pointer)
    if parsed.action.action not in allowed:
        raise ActionParseError(f"{parsed.action.action!r} is not available here; use one of {sorted(allowed)}", text)
    return parsed


def _usage(u: TokenUsage) -> Usage:
    return Usage(prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, cached_tokens=u.cached_tokens)
