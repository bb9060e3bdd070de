"""What the sandbox tests share: the mark for tests that need bubblewrap, and a sandbox fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pixelpilot.tools.code import Sandbox, SandboxLimits, bwrap_path

needs_bwrap = pytest.mark.skipif(
    bwrap_path() is None, reason="bubblewrap is missing or cannot create namespaces on this host"
)


def sandbox_fixture(limits: SandboxLimits) -> Callable[[], Iterator[Sandbox]]:
    """A fixture named ``sandbox`` (assign it to that name): a Python and bash sandbox with ``limits``,
    closed after the test."""

    @pytest.fixture
    def sandbox() -> Iterator[Sandbox]:
        sb = Sandbox(limits=limits, languages=("python", "bash"))
        yield sb
        sb.close()

    return sandbox
