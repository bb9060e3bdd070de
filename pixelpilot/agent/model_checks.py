"""The model as a judge and as a pointer: verdicts for ``expect: {that: …}`` and ``pilot.expect``,
points for ``by: model`` targets.

Both ask for schema-constrained JSON (``response_format: json_schema``) and validate the answer
with pydantic: it is data, never evaluated. An answer that does not validate, or a server that
does not answer, raises ModelError (the episode ends as ``model_error``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from ..actions import DEFAULT_GRID, Observation, bounded_string
from ..envs import Box
from ..serving.client import ModelClient, Sampling, ServingError
from ..serving.images import prepare_image
from .judge import Verdict
from .model_policy import ModelPolicy
from .policy import ModelError

#: Greedy decoding: the same screen and question get the same answer.
GREEDY = Sampling(temperature=0.0)
REASON_MAX = 60  # within the grammar's enforced bound: short answers, cheap to decode

JUDGE_PROMPT = (
    "You check a statement against a screenshot. Answer with JSON only: "
    '{"passed": true|false, "reason": "why, in a few words"}. '
    "Pass only when the screenshot clearly shows that the statement is true."
)
POINT_PROMPT = (
    'You locate things on a screenshot. Answer with JSON only: {"point_2d": [x, y]}, '
    "the centre of the described thing, x and y from 0 to 1000 across the image's width and height."
)


def _format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


VERDICT_FORMAT = _format(
    "verdict",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["passed", "reason"],
        "properties": {"passed": {"type": "boolean"}, "reason": bounded_string(REASON_MAX)},
    },
)
POINT_FORMAT = _format(
    "point",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["point_2d"],
        "properties": {
            "point_2d": {
                "type": "array",
                "minItems": 2,
                "maxItems": 2,
                "items": {"type": "integer", "minimum": 0, "maximum": 1000},
            }
        },
    },
)


class _Point(BaseModel):
    point_2d: tuple[int, int]


async def _ask(
    client: ModelClient, system: str, obs: Observation, question: str, fmt: dict[str, Any], max_image_tokens: int | None
) -> str:
    image = prepare_image(obs.png, max_tokens=max_image_tokens) if max_image_tokens else prepare_image(obs.png)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image.data_url()}},
                {"type": "text", "text": question},
            ],
        },
    ]
    try:
        answer = await client.complete(messages, response_format=fmt, max_tokens=128, sampling=GREEDY)
    except ServingError as e:
        raise ModelError(str(e)) from None
    return answer.text


class ModelJudge:
    """Asks the model whether a statement holds for the screen: a :class:`Verdict`."""

    def __init__(self, client: ModelClient, *, max_image_tokens: int | None = None) -> None:
        self.client = client
        self.max_image_tokens = max_image_tokens

    async def judge(self, obs: Observation, statement: str) -> Verdict:
        text = await _ask(
            self.client, JUDGE_PROMPT, obs, f"Statement: {statement}", VERDICT_FORMAT, self.max_image_tokens
        )
        try:
            return Verdict.model_validate_json(text)
        except ValidationError as e:
            raise ModelError(
                f"the model's verdict is not {{passed, reason}}: {e.errors()[0]['msg']}: {text[:200]!r}"
            ) from None


class ModelGrounder:
    """Asks the model for the ``point_2d`` of a description; returns it as a box in input space."""

    def __init__(self, client: ModelClient, *, max_image_tokens: int | None = None) -> None:
        self.client = client
        self.max_image_tokens = max_image_tokens

    async def locate(self, obs: Observation, text: str) -> Box | None:
        answer = await _ask(self.client, POINT_PROMPT, obs, f"Find: {text}", POINT_FORMAT, self.max_image_tokens)
        try:
            x, y = _Point.model_validate_json(answer).point_2d
        except ValidationError as e:
            raise ModelError(
                f"the model's point is not {{point_2d: [x, y]}}: {e.errors()[0]['msg']}: {answer[:200]!r}"
            ) from None
        px, py = DEFAULT_GRID.point_to_pixels(x, y, obs.input_width, obs.input_height)
        return Box(px, py, 0, 0)


def model_helpers(policy: ModelPolicy) -> dict[str, Any]:
    """What a ScriptPolicy (or the pilot) needs for its model steps, sharing ``policy``'s client:
    ``{"model": policy, "judge": ModelJudge, "grounder": ModelGrounder}``."""
    return {
        "model": policy,
        "judge": ModelJudge(policy.client, max_image_tokens=policy.max_image_tokens),
        "grounder": ModelGrounder(policy.client, max_image_tokens=policy.max_image_tokens),
    }
