"""The safety gate: sits between a policy's decision and its execution.

It refuses navigations the URL policy forbids and asks for approval before risky actions
(typing into a password field, submitting a form on a listed domain, running a tool that runs
code, closing key combos). Approval comes from an ``approver`` callback — a y/n prompt in the CLI,
any sync or async callable in the API; with none, the answer is no.

A refused action is not executed. The agent records it (``Step.extra["gate"]``), tells the policy
why through ``StepContext.notes`` and goes on, so a model can choose another way; after
``max_denials`` refusals in one episode it stops with status ``blocked``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..actions.keys import closes_window, enters_text
from ..envs import DescribesTargets
from ..envs.base import CLICKS
from ..envs.urlpolicy import HostPattern, UrlPolicy, parse_url
from .policy import StepContext


@dataclass(frozen=True)
class ApprovalRequest:
    """What the approver is asked about."""

    rule: str
    reason: str
    action: dict[str, Any]
    url: str | None = None


#: Answers an ApprovalRequest with True (go ahead) or False; may be async.
Approver = Callable[[ApprovalRequest], "bool | Awaitable[bool]"]


@dataclass(frozen=True)
class ApprovalRules:
    """Which actions need approval. ``submit_domains`` are host patterns as in UrlPolicy
    (``"*"`` means every site); ``tools`` names the tools that run code — the built-in code tool
    by default — (None: every tool)."""

    password_fields: bool = True
    submit_domains: tuple[str, ...] = ()
    tools: tuple[str, ...] | None = ("run_code",)
    closing_keys: bool = True


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer for one action, as recorded in ``Step.extra["gate"]``."""

    allowed: bool
    verdict: Literal["allow", "deny", "approved", "refused"]
    rule: str | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


ALLOW = GateDecision(True, "allow")


class Gate:
    """Checks each action before it runs.

    >>> gate = Gate(UrlPolicy.of(allow=["example.com"]), approver=lambda req: False)   # doctest: +SKIP
    """

    def __init__(
        self,
        url_policy: UrlPolicy | None = None,
        *,
        rules: ApprovalRules | None = ApprovalRules(),
        approver: Approver | None = None,
        max_denials: int = 3,
    ) -> None:
        self.url_policy = url_policy or UrlPolicy()
        self.rules = rules
        self.approver = approver
        self.max_denials = max_denials
        self._submit = [HostPattern.parse(p) for p in rules.submit_domains if p != "*"] if rules else []

    async def check(self, action: Any, ctx: StepContext) -> GateDecision:
        """Allow, deny, or ask the approver about ``action`` in the situation ``ctx`` describes."""
        url = ctx.observation.url
        if action.action == "navigate":
            verdict = self.url_policy.check(action.url, base=url)
            if not verdict.allowed:
                return GateDecision(False, "deny", "url_policy", f"navigation to {verdict.url[:200]}: {verdict.reason}")
        need = await self._needs_approval(action, ctx)
        if need is None:
            return ALLOW
        rule, reason = need
        request = ApprovalRequest(rule, reason, action.model_dump(mode="json"), url)
        if self.approver is None:
            return GateDecision(False, "refused", rule, f"{reason}; nobody can approve it (no approver)")
        answer = self.approver(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if answer:
            return GateDecision(True, "approved", rule, reason)
        return GateDecision(False, "refused", rule, f"{reason}; the approver said no")

    async def _needs_approval(self, action: Any, ctx: StepContext) -> tuple[str, str] | None:
        rules, kind = self.rules, action.action
        if rules is None:
            return None
        if kind == "tool" and (rules.tools is None or action.name in rules.tools):
            return "tool", f"run the {action.name!r} tool"
        # Keys pressed: a key action's, or a phone's Enter button (it presses Enter in the page).
        pressed = (
            action.keys
            if kind == "key"
            else ["enter"]
            if kind == "system_button" and action.button == "enter"
            else None
        )
        if kind == "key" and rules.closing_keys and closes_window(action.keys):
            return "closing_keys", f"press {'+'.join(action.keys)}, which closes a tab or window"
        if kind == "window" and action.op == "close" and rules.closing_keys:  # what those keys do, asked for
            return "closing_keys", f"close the window {action.window!r}"
        if (kind not in CLICKS and kind != "type" and pressed is None) or not (
            rules.password_fields or rules.submit_domains
        ):
            return None
        target = await ctx.env.describe_target(action) if isinstance(ctx.env, DescribesTargets) else None
        if not target:
            return None
        if rules.password_fields and target.get("type") == "password":
            # Key by key is typing too: any key that can put text in (a character, a paste) counts.
            if kind == "type":
                return "password", "type into a password field"
            if pressed is not None and enters_text(pressed):
                return "password", f"press {'+'.join(pressed)} in a password field"
        submits = (
            target.get("submit")
            if pressed is None
            else (target.get("form") and target.get("tag") == "input" and "enter" in pressed)
        )
        if submits and self._submit_listed(ctx.observation.url):
            return "submit", f"submit a form on {ctx.observation.url}"
        return None

    def _submit_listed(self, url: str | None) -> bool:
        if self.rules is None or not self.rules.submit_domains:
            return False
        if "*" in self.rules.submit_domains:
            return True
        try:
            _, host, port = parse_url(url or "")
        except ValueError:
            return True  # cannot tell where we are: ask
        return any(p.matches(host, port) for p in self._submit)
