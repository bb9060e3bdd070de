"""``ModelPolicy``: a vision-language model behind an OpenAI-compatible server chooses each action."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from ..actions import Observation, Task
from ..profiles import (
    DEFAULT_PROFILE,
    ActionParseError,
    DecodeContext,
    ImageRef,
    ParsedOutput,
    Profile,
    Setup,
    get_profile,
    to_openai,
)
from ..serving.client import ModelClient, Sampling, ServingError, TokenUsage, is_thinking
from ..serving.images import DEFAULT_MAX_TOKENS, ModelImage, prepare_image
from ..trajectories import Step, Usage
from ..trajectories.recorder import screenshot_key
from ..trajectories.samples import image_of, past_steps, step_key, turn_of
from .policy import Decision, ModelError, Policy, StepContext

_IMAGE_CACHE = 64  # resized screenshots kept by hash: enough for any history the profiles show
#: The answer formats of the old ``mode`` option, and the profiles that replaced them.
_MODES = {"json_schema": "json", "tool_call": "qwen3-vl"}


class ModelPolicy(Policy):
    """Asks a model for each step's action, over HTTP, in the format of a model profile.

    >>> policy = ModelPolicy("http://127.0.0.1:30000/v1")                      # doctest: +SKIP
    >>> episode = await Agent(BrowserEnv(), policy).run("Add a to-do 'milk'")  # doctest: +SKIP

    ``client`` is a URL, a list of URLs (a pool) or a shared ``ModelClient``. ``profile`` is the
    model family's contract (:mod:`pixelpilot.profiles`): ``"qwen3-vl"`` (the default, for
    Qwen3-VL checkpoints), ``"json"`` (pixelpilot's own JSON, for other models) or ``"ui-tars"``.
    It writes the prompt, constrains the answer (``constrain=False`` sends no grammar, for servers
    without constrained decoding) and reads it back. ``keep_images``/``drop_block`` set the
    history (the profile's defaults otherwise); ``sampling`` overrides the model card's sampling
    the profile sends; ``thinking`` says whether the checkpoint is a Thinking one (default: its
    name says so). ``actions`` narrows the action set (default: all the env kind accepts);
    ``tools`` adds registered tools (``ToolSpec``, registry ``Tool`` or ``(name, parameters)``).

    An answer that does not parse is asked for once more with the parse error appended; a server
    that stays unreachable or broken, or a second bad answer, raises ``ModelError`` — the Agent
    then ends the episode as ``model_error`` and saves it. Each step records its prompt's setup
    (``step.extra["prompt"]``), from which the exports rebuild the request.

    One ModelPolicy drives one episode at a time (it pins the episode to a server of the pool);
    episodes run side by side use one ModelPolicy each, sharing a ``ModelClient``.
    """

    def __init__(
        self,
        client: ModelClient | str | Sequence[str],
        *,
        model: str | None = None,
        profile: str | Profile = DEFAULT_PROFILE,
        mode: str | None = None,
        keep_images: int | None = None,
        drop_block: int | None = None,
        max_image_tokens: int = DEFAULT_MAX_TOKENS,
        max_tokens: int = 512,
        sampling: Sampling | None = None,
        actions: Sequence[str] | None = None,
        tools: Sequence[Any] = (),
        reask: bool = True,
        constrain: bool = True,
        thinking: bool | None = None,
    ) -> None:
        if mode is not None:
            hint = f"profile={_MODES[mode]!r}" if mode in _MODES else "a profile"
            raise ValueError(f"mode={mode!r} is gone: model formats are profiles now; pass {hint}")
        self.profile = get_profile(profile)
        self._owns_client = not isinstance(client, ModelClient)
        self.client = client if isinstance(client, ModelClient) else ModelClient(client, model=model)
        self.keep_images = keep_images
        self.drop_block = drop_block
        self.max_image_tokens = max_image_tokens
        self.max_tokens = max_tokens
        self.sampling = sampling
        self.actions = tuple(actions) if actions is not None else None
        self.tools = tuple(tools)
        self.reask = reask
        self.constrain = constrain
        self.thinking = thinking
        self._images: OrderedDict[str, ModelImage] = OrderedDict()
        self._episode: str | None = None
        Setup(self.profile.name, actions=self.actions)  # an unknown action name fails here, not at the first step

    def setup(self, kind: str, grid: int = 1000, model: str | None = None) -> Setup:
        """The prompt setup for an env kind (``model`` decides whether it is a Thinking checkpoint)."""
        return self.profile.setup(
            kind,
            grid=grid,
            actions=self.actions,
            tools=self.tools,
            keep_images=self.keep_images,
            drop_block=self.drop_block,
            max_image_tokens=self.max_image_tokens,
            thinking=self.thinking if self.thinking is not None else is_thinking(model),
        )

    async def reset(self, task: Task) -> None:
        """A new episode: a new pin to a server of the pool."""
        self._start()

    def _start(self) -> None:
        if self._episode is not None:
            self.client.release(self._episode)
        self._episode = uuid.uuid4().hex

    async def decide(self, ctx: StepContext) -> Decision:
        if self._episode is None:  # a wrapper (a script's `do:`) may ask without an episode start
            self._start()
        model = await self._model()
        setup = self.setup(ctx.env.kind, ctx.grid.size, model)
        image = self._image(ctx.observation, setup)
        current = ImageRef(screenshot_key(ctx.observation), image.width, image.height)
        shown = [self._known(step, setup) for step in ctx.history]
        history = past_steps(ctx.history, self.profile, setup, shown)
        turn = turn_of(ctx.observation.meta(), ctx.notes, current)
        messages = to_openai(self.profile.messages(setup, ctx.task.instruction, history, turn), self._data_url)
        constraint = self.profile.constraint(setup, (image.width, image.height)) if self.constrain else {}
        decode = DecodeContext(setup, ctx.pointer, (image.width, image.height))

        # One deadline for the decision: a re-ask gets what the first answer left of it.
        until = time.monotonic() + self.client.deadline
        answer = await self._ask(messages, constraint, setup, model, until)
        usage = _usage(answer.usage)
        try:
            parsed = self._parse(answer.text, decode)
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
            answer = await self._ask(retry, constraint, setup, model, until)
            usage = usage + _usage(answer.usage)
            try:
                parsed = self._parse(answer.text, decode)
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
                "prompt": {
                    "setup": setup.to_json(),
                    "task": ctx.task.instruction,
                    "history_from": ctx.history[0].index if ctx.history else None,
                },
            },
        )

    def _parse(self, text: str, ctx: DecodeContext) -> ParsedOutput:
        parsed = self.profile.decode(text, ctx)
        allowed = ctx.setup.allowed
        if parsed.action.action not in allowed:
            raise ActionParseError(f"{parsed.action.action!r} is not available here; use one of {list(allowed)}", text)
        return parsed

    async def _model(self) -> str:
        try:
            return await self.client.resolve_model()
        except ServingError as e:
            raise ModelError(str(e)) from None

    async def _ask(
        self, messages: list[dict[str, Any]], constraint: dict[str, Any], setup: Setup, model: str, until: float
    ) -> Any:
        sampling = self.sampling if self.sampling is not None else self.profile.sampling(model, setup)
        try:
            return await self.client.complete(
                messages,
                max_tokens=self.max_tokens,
                sampling=sampling,
                episode=self._episode,
                extra=constraint,
                until=until,
            )
        except ServingError as e:
            raise ModelError(str(e)) from None

    def _image(self, obs: Observation, setup: Setup) -> ModelImage:
        key = screenshot_key(obs)
        size = self.profile.image_size(obs.width, obs.height, setup)
        image = self._images.get(key)
        if image is None or (image.width, image.height) != size:
            image = prepare_image(obs.png, size=size, factor=self.profile.image_factor)
            self._images[key] = image
            while len(self._images) > max(_IMAGE_CACHE, setup.keep_images + setup.drop_block):
                self._images.popitem(last=False)
        else:
            self._images.move_to_end(key)
        return image

    def _known(self, step: Step, setup: Setup) -> ImageRef | None:
        """A past step's screenshot as it was shown, when this policy still holds its pixels."""
        ref = image_of(step, self.profile, setup)
        image = self._images.get(step_key(step))
        return ref if image is not None and (image.width, image.height) == (ref.width, ref.height) else None

    def _data_url(self, ref: ImageRef) -> str:
        return self._images[ref.key].data_url()

    async def aclose(self) -> None:
        """Close the HTTP client when this policy created it (a shared one stays open)."""
        if self._episode is not None:
            self.client.release(self._episode)
            self._episode = None
        if self._owns_client:
            await self.client.aclose()


def _usage(u: TokenUsage) -> Usage:
    return Usage(prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, cached_tokens=u.cached_tokens)
