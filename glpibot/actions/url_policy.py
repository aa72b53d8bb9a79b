"""Match request URLs against the operator's URL allowlist, one URL component at a time.

A pattern looks like a URL: `scheme://host[:port][path]`, for example
`http://127.0.0.1:*/*` or `https://*.home.arpa/*`. Plain fnmatch over the
whole string is unsafe, because `https://*.home.arpa/*` would then match
`https://evil.test/x.home.arpa/y` and `https://a.home.arpa@evil.test/`.
So the pattern and the URL are split into scheme, host, port and request
target, and each part is compared on its own:

- scheme: equal, case-insensitive; only http and https exist here.
- host: a glob over the lower-cased host name. `*` matches letters, digits,
  `-` and `_` within one DNS label, so `10.0.0.*` cannot match
  `10.0.0.1.evil.test`; `**` also crosses dots. An IPv6 literal is written
  in brackets (`[::1]`) and compared as an address. A trailing dot is part
  of the name: `example.test.` matches only a pattern written with the dot.
- port: `*` matches any port; no port matches the scheme's default port
  only (80 or 443); a number must equal the URL's effective port.
- target: a glob where `*` matches anything, `/` included, over the path
  plus `?query` when the URL has a query. A pattern without a path means
  `/*`. The fragment never reaches the server and is ignored.

Some URLs are rejected whatever the patterns contain (see `url_problem`): user
info, backslashes, spaces, control and non-ASCII characters, percent signs
in the host, malformed ports and `.` or `..` path segments (requests would
remove those before sending, so the path checked would not be the one sent).
Percent-encoded characters are compared as written, never decoded, so
`/heal%74h` does not match a pattern for `/health`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}

_LABEL_CHARS = r"a-z0-9_\-"
_HOST_NAME = re.compile(rf"[{_LABEL_CHARS}]+(\.[{_LABEL_CHARS}]+)*\.?")
_HOST_GLOB = re.compile(rf"[{_LABEL_CHARS}*]+(\.[{_LABEL_CHARS}*]+)*\.?")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class UrlParts:
    """The components of a request URL that the allowlist compares."""

    scheme: str  # lower case: "http" or "https"
    host: str  # lower case; an IPv6 address in its compressed form inside brackets
    port: int  # the effective port: the explicit one, else the scheme's default
    target: str  # path (at least "/") plus "?query" when there is a query


@dataclass(frozen=True)
class UrlPattern:
    """One parsed allowlist pattern."""

    text: str
    scheme: str
    host: re.Pattern[str]
    port: int | None  # None: any port (the pattern wrote `:*`)
    target: re.Pattern[str]

    def matches(self, parts: UrlParts) -> bool:
        """Return True when every component of the URL matches this pattern."""
        if parts.scheme != self.scheme:
            return False
        if self.port is not None and parts.port != self.port:
            return False
        if not self.host.fullmatch(parts.host):
            return False
        return self.target.fullmatch(parts.target) is not None


def _character_problem(text: str) -> str | None:
    for char in text:
        if char == " ":
            return "contains a space; percent-encode it as %20"
        if not 0x21 <= ord(char) <= 0x7E:
            return f"contains the character {char!r}; only printable ASCII is allowed, percent-encode the rest"
    if "\\" in text:
        return "contains a backslash"
    return None


def _split_host_port(netloc: str) -> tuple[str, str | None]:
    """Split `host[:port]` or `[v6]:port`; raise ValueError on a malformed authority."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise ValueError("has an IPv6 address without its closing ]")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError("has characters after the IPv6 address")
        return host, rest[1:]
    if netloc.count(":") > 1:
        raise ValueError("has more than one ':' in the host; write IPv6 addresses in brackets")
    host, colon, port = netloc.partition(":")
    return host, (port if colon else None)


def _ipv6_host(bracketed: str) -> str:
    """Return `[address]` in compressed form; raise ValueError when it is not an IPv6 address."""
    inner = bracketed[1:-1]
    if "%" in inner:
        raise ValueError("has an IPv6 zone id, which is not allowed")
    try:
        address = ipaddress.IPv6Address(inner)
    except ValueError:
        raise ValueError(f"has an invalid IPv6 address {bracketed}") from None
    return f"[{address.compressed}]"


def _parse_port(port: str | None) -> int | None:
    if port is None:
        return None
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise ValueError(f"has an invalid port {port!r}; use a number from 1 to 65535")
    return int(port)


def _has_dot_segment(path: str) -> bool:
    return any(unquote(segment) in (".", "..") for segment in path.split("/"))


def parse_url(url: str) -> UrlParts:
    """Split a request URL into the components the allowlist compares.

    Raises ValueError with the reason for a URL that no pattern may allow.
    """
    problem = _character_problem(url)
    if problem:
        raise ValueError(problem)
    try:
        split = urlsplit(url)
    except ValueError:
        raise ValueError("is not a valid URL") from None
    scheme = split.scheme.lower()
    if scheme not in DEFAULT_PORTS or not url.lower().startswith(f"{scheme}://"):
        raise ValueError("must start with http:// or https://")
    if "@" in split.netloc:
        raise ValueError("contains user info (user:password@), which is not allowed")
    if not split.netloc:
        raise ValueError("has no host")
    host, port_text = _split_host_port(split.netloc)
    host = host.lower()
    if host.startswith("["):
        host = _ipv6_host(host)
    elif not _HOST_NAME.fullmatch(host):
        raise ValueError(f"has an invalid host {host!r}; use a DNS name or an IP address without encoding")
    port = _parse_port(port_text)
    if _has_dot_segment(split.path):
        raise ValueError("has a '.' or '..' path segment; write the path without them")
    target = split.path or "/"
    if split.query:
        target = f"{target}?{split.query}"
    return UrlParts(scheme, host, port if port is not None else DEFAULT_PORTS[scheme], target)


def _host_regex(glob: str) -> re.Pattern[str]:
    pieces = []
    for index, piece in enumerate(glob.split("**")):
        if index:
            pieces.append(f"[{_LABEL_CHARS}.]*")
        pieces.append(f"[{_LABEL_CHARS}]*".join(re.escape(part) for part in piece.split("*")))
    return re.compile("".join(pieces))


def _target_regex(glob: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")), re.DOTALL)


def parse_pattern(pattern: str) -> UrlPattern:
    """Parse one allowlist pattern; raise ValueError saying why it is invalid."""
    problem = _character_problem(pattern)
    if problem:
        raise ValueError(problem)
    scheme, separator, rest = pattern.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in DEFAULT_PORTS:
        raise ValueError("must start with http:// or https://")
    if "#" in rest:
        raise ValueError("contains '#'; fragments are never sent to the server")

    authority_end = len(rest)
    for stop in "/?":
        found = rest.find(stop)
        if found >= 0:
            authority_end = min(authority_end, found)
    netloc, target = rest[:authority_end], rest[authority_end:]

    if "@" in netloc:
        raise ValueError("contains user info (user:password@)")
    host, port_text = _split_host_port(netloc)
    host = host.lower()
    if host.startswith("["):
        host_regex = re.compile(re.escape(_ipv6_host(host)))
    elif host and _HOST_GLOB.fullmatch(host):
        host_regex = _host_regex(host)
    else:
        raise ValueError(f"has an invalid host {host!r}")

    if port_text == "*":
        port = None
    else:
        port = _parse_port(port_text)
        if port is None:
            port = DEFAULT_PORTS[scheme]
    if not target:
        target = "/*"
    elif target.startswith("?"):
        target = "/" + target
    return UrlPattern(pattern, scheme, host_regex, port, _target_regex(target))


def pattern_problem(pattern: str) -> str | None:
    """Return why an allowlist pattern is invalid, or None; an invalid pattern matches nothing."""
    try:
        parse_pattern(pattern)
    except ValueError as exc:
        return f"pattern {pattern!r} {exc}"
    return None


def url_problem(url: str) -> str | None:
    """Return why no pattern may ever allow this URL, or None when its shape is acceptable.

    The reason reads after the URL: "contains user info (user:password@), which is not allowed".
    """
    try:
        parse_url(url)
    except ValueError as exc:
        return str(exc)
    return None


def url_allowed(url: str, patterns: list[str]) -> bool:
    """Return True when the URL's shape is acceptable and at least one valid pattern matches it.

    An empty list allows nothing, and an invalid pattern matches nothing.
    """
    try:
        parts = parse_url(url)
    except ValueError:
        return False
    for pattern in patterns:
        try:
            compiled = parse_pattern(pattern)
        except ValueError:
            continue
        if compiled.matches(parts):
            return True
    return False
