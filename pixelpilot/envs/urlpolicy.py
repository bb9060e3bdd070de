"""Which URLs an agent may visit: a domain allowlist / blocklist, parsed rather than pattern-matched.

Patterns are host names (``example.com`` also covers its subdomains; ``*.example.com`` only the
subdomains), optionally with a port (``localhost:8080``), or IP literals (``127.0.0.1``, ``[::1]``).
Unicode names are compared in their punycode form, so ``bücher.example`` and
``xn--bcher-kva.example`` are the same rule. Only http(s) and ws(s) URLs have a host that can be
allowed; every other scheme (data:, blob:, javascript:, file:, chrome:, view-source:, about: other
than about:blank …) is refused while a policy is active.

URLs are parsed by ada (``ada-url``), a WHATWG URL Standard parser, which is what Chromium follows:
the check reads the host the browser will connect to, whatever the spelling — percent-encoded
(``adm%69n.example``), full-width or soft-hyphenated letters, backslashes, tabs, decimal, octal or
short IPv4 (``2130706433``, ``0177.1``). An IPv4-mapped IPv6 literal (``[::ffff:127.0.0.1]``) is that
IPv4 host; IPv6 forms that can carry traffic to an embedded IPv4 address (NAT64, 6to4,
IPv4-compatible) are refused when that address is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ada_url import URL

from .base import EnvError, UrlDecision

NETWORK_SCHEMES = {"http": 80, "https": 443, "ws": 80, "wss": 443}
#: Pages that hold nothing: always allowed (a new tab, an iframe's inline document).
EMPTY_PAGES = ("about:blank", "about:srcdoc")
#: NAT64 prefixes (RFC 6052's well-known one and RFC 8215's local-use one): the last 32 bits are an IPv4 address.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class UrlPolicyError(ValueError):
    """A pattern in an allow/block list cannot be understood; the message names it."""


class NavigationBlocked(EnvError):
    """The URL policy refused a navigation the env was asked to make (the task's start page, say)."""


def canonical_host(host: str) -> str:
    """The form hosts are compared in: a host as the URL parser gives it (lower-case ASCII,
    punycode), without a trailing dot or IPv6 brackets; an IPv4-mapped IPv6 literal as its IPv4 address."""
    host = host.rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        ip = ipaddress.IPv6Address(host[1:-1])
        return str(ip.ipv4_mapped or ip)
    return host


def embedded_ipv4(host: str) -> list[str]:
    """IPv4 addresses an IPv6 literal can carry traffic to: NAT64, 6to4 and IPv4-compatible forms."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return []
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    out = []
    if any(ip in net for net in _NAT64) or (ip.packed[:12] == bytes(12) and int(ip) > 1):
        out.append(ipaddress.IPv4Address(ip.packed[-4:]))
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    return [str(a) for a in out]


def parse_url(url: str, base: str | None = None) -> tuple[str, str, int]:
    """``(scheme, canonical host, port)`` of a network URL as a browser reads it (relative URLs
    resolve against ``base``). Raises ValueError for anything a browser would not load as http(s)/ws(s)."""
    parsed = URL(url, base) if base else URL(url)
    scheme = parsed.protocol.rstrip(":")
    if scheme not in NETWORK_SCHEMES:
        raise ValueError(f"the {scheme or 'missing'}: scheme is not allowed")
    host = canonical_host(parsed.hostname)
    if not host:
        raise ValueError("the URL has no host")
    return scheme, host, int(parsed.port or NETWORK_SCHEMES[scheme])


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
        try:
            if "://" in raw:
                raw = URL(raw).host  # tolerate a pasted URL
            wildcard = raw.startswith("*.")
            if wildcard:
                raw = raw[2:]
            if _is_ip(raw) and ":" in raw:
                raw = f"[{raw}]"  # a bare IPv6 literal
            if "/" in raw or "@" in raw:
                raise ValueError("a path or user name")
            parsed = URL(f"http://{raw}/")
            host = canonical_host(parsed.hostname)
            # The parser drops a scheme's default port (:80 here); the pattern's own text keeps it.
            _, colon, port_text = raw[raw.rfind("]") + 1 :].rpartition(":")
            port = int(port_text) if colon else None
            for label in host.split("."):
                _check_ace(label)
        except (ValueError, UnicodeError) as e:
            raise UrlPolicyError(f"cannot read domain pattern {text!r}: {e}") from None
        labels_ok = all(label and all(c.isalnum() or c in "-_" for c in label) for label in host.split("."))
        if not host or not (labels_ok or _is_ip(host)):
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
        try:
            parsed = URL(url, base) if base else URL(url)
        except ValueError:
            return UrlVerdict(url, False, "unparseable URL")
        href = parsed.href
        if parsed.protocol == "about:" and f"about:{parsed.pathname.lower()}" in EMPTY_PAGES:
            return UrlVerdict(href, True, "an empty page")
        try:
            _, host, port = parse_url(href)
        except ValueError as e:
            return UrlVerdict(href, False, str(e))
        for p in self.block:
            if p.matches(host, port) or any(p.matches(ip, port) for ip in embedded_ipv4(host)):
                return UrlVerdict(href, False, f"{host} is on the blocklist", host)
        if self.allow and not any(p.matches(host, port) for p in self.allow):
            return UrlVerdict(href, False, f"{host}:{port} is not on the allowlist", host)
        return UrlVerdict(href, True, "allowed", host)
