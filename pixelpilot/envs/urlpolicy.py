"""Which URLs an agent may visit: a domain allowlist / blocklist, parsed rather than pattern-matched.

Patterns are host names (``example.com`` also covers its subdomains; ``*.example.com`` only the
subdomains), optionally with a port (``localhost:8080``), or IP literals (``127.0.0.1``, ``[::1]``).
Unicode names are compared in their punycode form, so ``bücher.example`` and
``xn--bcher-kva.example`` are the same rule. Only http(s) and ws(s) URLs have a host that can be
allowed; every other scheme (data:, blob:, javascript:, file:, chrome:, view-source:, about: other
than about:blank …) is refused while a policy is active.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from .base import EnvError, UrlDecision

NETWORK_SCHEMES = {"http": 80, "https": 443, "ws": 80, "wss": 443}
#: Pages that hold nothing: always allowed (a new tab, an iframe's inline document).
EMPTY_PAGES = ("about:blank", "about:srcdoc")


class UrlPolicyError(ValueError):
    """A pattern in an allow/block list cannot be understood; the message names it."""


class NavigationBlocked(EnvError):
    """The URL policy refused a navigation the env was asked to make (the task's start page, say)."""


def canonical_host(host: str) -> str:
    """Lower-case ASCII form of a host: punycode for Unicode names, a compressed IP for literals.

    Raises UnicodeError for a name IDNA refuses (the caller treats that as not allowed).
    """
    host = host.strip().rstrip(".").lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host.isascii():
        # Already-punycode labels must still be valid IDNA (rejects xn-- garbage).
        return ".".join(_check_ace(label) for label in host.split(".")) if "xn--" in host else host
    import idna

    return idna.encode(host, uts46=True).decode("ascii")


def _check_ace(label: str) -> str:
    if label.startswith("xn--"):
        import idna

        idna.decode(label)  # raises on an invalid label
    return label


@dataclass(frozen=True)
class HostPattern:
    """One allow/block entry."""

    host: str
    port: int | None = None
    subdomains: bool = True  # also matches *.host
    exact: bool = True  # matches host itself (False for "*.host")

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        raw = text.strip()
        if not raw:
            raise UrlPolicyError("an empty domain pattern; write e.g. example.com or *.example.com")
        if "://" in raw:
            raw = urlsplit(raw).netloc  # tolerate a pasted URL
        wildcard = raw.startswith("*.")
        if wildcard:
            raw = raw[2:]
        port: int | None = None
        parts = urlsplit(f"//{raw}")
        try:
            port = parts.port
            host = canonical_host(parts.hostname or "")
        except (ValueError, UnicodeError) as e:
            raise UrlPolicyError(f"cannot read domain pattern {text!r}: {e}") from None
        labels_ok = all(label and all(c.isalnum() or c in "-_" for c in label) for label in host.split("."))
        if not host or "/" in raw or "@" in raw or not (labels_ok or _is_ip(host)):
            raise UrlPolicyError(
                f"{text!r} is not a host pattern; write e.g. example.com, *.example.com or localhost:8080"
            )
        is_ip = _is_ip(host)
        return cls(host=host, port=port, subdomains=not is_ip, exact=not wildcard)

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if host == self.host:
            return self.exact
        return self.subdomains and host.endswith("." + self.host)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class UrlVerdict:
    """The policy's answer for one URL, as recorded in the trajectory."""

    url: str
    allowed: bool
    reason: str
    host: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"url": self.url[:500], "allowed": self.allowed, "reason": self.reason, "host": self.host}

    def decision(self, kind: str) -> UrlDecision:
        """This verdict as the decision recorded in a step (``kind``: navigation, redirect, popup …)."""
        return UrlDecision(kind=kind, url=self.url[:500], allowed=self.allowed, reason=self.reason, host=self.host)


def normalize_url(url: str) -> str:
    """What a browser does before parsing: strip C0/space at the ends, drop tabs and newlines, and
    treat backslashes as slashes in special schemes (``http://evil.com\\@good.com`` goes to evil.com)."""
    url = url.strip("".join(map(chr, range(0x21))))
    url = url.replace("\t", "").replace("\n", "").replace("\r", "")
    scheme, sep, rest = url.partition(":")
    if sep and scheme.lower() in (*NETWORK_SCHEMES, "ftp", "file"):
        url = scheme + ":" + rest.replace("\\", "/")
    return url


@dataclass(frozen=True)
class UrlPolicy:
    """An allowlist and/or blocklist of hosts.

    With an ``allow`` list, only hosts on it may be visited; ``block`` always wins. With neither,
    the policy is inactive and allows everything. ``block_subresources`` also refuses images,
    scripts and fetches to hosts the page itself could not navigate to.

    >>> UrlPolicy.of(allow=["example.com"]).check("https://a.example.com@evil.com/").allowed
    False
    """

    allow: tuple[HostPattern, ...] = ()
    block: tuple[HostPattern, ...] = ()
    block_subresources: bool = False

    @classmethod
    def of(cls, allow: Iterable[str] = (), block: Iterable[str] = (), *, block_subresources: bool = False) -> UrlPolicy:
        """Build a policy from pattern strings (raises UrlPolicyError naming a bad one)."""
        return cls(
            tuple(HostPattern.parse(p) for p in allow), tuple(HostPattern.parse(p) for p in block), block_subresources
        )

    @property
    def active(self) -> bool:
        return bool(self.allow or self.block)

    def check(self, url: str, *, base: str | None = None) -> UrlVerdict:
        """Decide one URL (relative URLs resolve against ``base``)."""
        if not self.active:
            return UrlVerdict(url, True, "no URL policy")
        url = normalize_url(url)
        try:
            if base and not urlsplit(url).scheme:
                url = urljoin(base, url)
            parts = urlsplit(url)
        except ValueError as e:
            return UrlVerdict(url, False, f"unparseable URL: {e}")
        if url.lower() in EMPTY_PAGES:
            return UrlVerdict(url, True, "an empty page")
        scheme = parts.scheme.lower()
        if scheme not in NETWORK_SCHEMES:
            return UrlVerdict(url, False, f"the {scheme or 'missing'}: scheme is not allowed")
        try:
            host = canonical_host(parts.hostname or "")
            port = parts.port or NETWORK_SCHEMES[scheme]
        except (ValueError, UnicodeError) as e:
            return UrlVerdict(url, False, f"unreadable host: {e}")
        if not host:
            return UrlVerdict(url, False, "the URL has no host")
        for p in self.block:
            if p.matches(host, port):
                return UrlVerdict(url, False, f"{host} is on the blocklist", host)
        if self.allow and not any(p.matches(host, port) for p in self.allow):
            return UrlVerdict(url, False, f"{host}:{port} is not on the allowlist", host)
        return UrlVerdict(url, True, "allowed", host)
