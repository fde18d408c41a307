"""Webhook destinations: strict URL parsing, address checks, one POST that never follows a redirect.

A webhook URL is accepted only when it is printable ASCII without spaces, ``http`` or
``https``, with a host and a valid port. Its host is resolved (``getaddrinfo``, which also
reads numeric forms such as ``0x7f000001``, ``2130706433`` or ``0177.0.0.1``) and every
address it gives must be public: loopback, link-local (``169.254.0.0/16``, ``fe80::/10``),
private, shared (``100.64.0.0/10``), multicast, reserved and unspecified addresses are
refused unless the operator allows the host name or a network holding the address
(``earshot serve --webhook-allow HOST_OR_CIDR``). The POST connects to the address that was
checked (a second lookup cannot swap it), has a timeout, and treats any answer outside 2xx,
a redirect included, as a failure.

Readers see webhook URLs through :func:`mask_url`: credentials (``user:password@``) and
every query value are replaced by ``***``.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union
from urllib.parse import SplitResult, urlsplit, urlunsplit

__all__ = ["WebhookError", "WebhookPolicy", "parse_url", "mask_url", "post_json"]

MAX_URL = 2048
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class WebhookError(ValueError):
    """A webhook URL that is malformed or points at a refused address (one line, the reason)."""


def parse_url(url: str) -> SplitResult:
    """Split a webhook URL, refusing anything but a plain printable http(s) URL with a host.

    Raises
    ------
    WebhookError
    """
    if not isinstance(url, str) or not url:
        raise WebhookError("expected an http(s) URL")
    if len(url) > MAX_URL:
        raise WebhookError(f"longer than {MAX_URL} characters")
    bad = next((c for c in url if not (0x21 <= ord(c) <= 0x7E) or c == "\\"), None)
    if bad is not None:
        raise WebhookError(f"contains {bad!r}: spaces, control characters, backslashes and non-ASCII "
                           "characters are refused (percent-encode them)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WebhookError(f"expected an http or https URL, got scheme {parts.scheme!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise WebhookError("has an invalid port") from None
    if not parts.hostname:
        raise WebhookError("has no host")
    return parts


def mask_url(url: Optional[str]) -> Optional[str]:
    """The URL with its credentials and query values replaced by ``***`` (for readers)."""
    if not url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(f"{kv.split('=', 1)[0]}=***" if "=" in kv else "***" for kv in parts.query.split("&")) \
        if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _address(text: str) -> Address:
    address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 scope ("fe80::1%eth0")
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _refusal(address: Address) -> Optional[str]:
    """Why an address is refused, or None for a public unicast address."""
    for what in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(address, f"is_{what}"):
            return what.replace("_", "-")
    if not address.is_global:
        return "not public"
    return None


@dataclass(frozen=True)
class WebhookPolicy:
    """Which destinations webhooks may reach.

    Parameters
    ----------
    allow : sequence of str
        Host names (matched case-insensitively) and IP networks or addresses (``10.0.0.0/8``,
        ``127.0.0.1``) allowed although they are not public.
    """

    allow: Sequence[str] = ()

    @staticmethod
    def check_entry(entry: str) -> str:
        """One ``--webhook-allow`` entry, normalised; WebhookError when it is neither a host nor a network."""
        entry = entry.strip()
        try:
            return str(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            pass
        if not entry or any(not (c.isalnum() or c in "-._") for c in entry):
            raise WebhookError(f"expected a host name or an IP network (10.0.0.0/8), got {entry!r}")
        return entry.lower().rstrip(".")

    def _networks(self) -> list[Network]:
        out = []
        for entry in self.allow:
            try:
                out.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
        return out

    def resolve(self, url: str) -> tuple[SplitResult, str]:
        """Parse ``url`` and pick the address to connect to; WebhookError when it is refused.

        Returns
        -------
        (parts, address)
            Every address the host resolves to is checked; the first is returned.
        """
        parts = parse_url(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise WebhookError(f"host {host!r} does not resolve ({exc})") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if not addresses:
            raise WebhookError(f"host {host!r} does not resolve")
        host_allowed = host.lower().rstrip(".") in {a.lower() for a in self.allow}
        networks = self._networks()
        for text in addresses:
            address = _address(text)
            why = _refusal(address)
            if why and not host_allowed and not any(address in net for net in networks
                                                     if net.version == address.version):
                raise WebhookError(f"host {host!r} resolves to {address}, a {why} address; webhooks reach only "
                                   "public addresses unless the server allows it (earshot serve --webhook-allow)")
        return parts, addresses[0]


class _Pinned(http.client.HTTPConnection):
    """An HTTP connection to a checked address (the Host header keeps the URL's host)."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    """As :class:`_Pinned`, over TLS with the URL's host checked against the certificate."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post_json(url: str, body: bytes, *, policy: WebhookPolicy, timeout_s: float) -> Optional[str]:
    """POST ``body`` (JSON) to ``url``; None when it got a 2xx answer, else the reason, one line.

    Never raises for a bad URL, a refused address, a network failure or a redirect: each is a
    reason (a 3xx is "redirect to ... not followed").
    """
    try:
        parts, address = policy.resolve(url)
    except WebhookError as exc:
        return f"refused: {exc}"
    cls = _PinnedTLS if parts.scheme == "https" else _Pinned
    conn = cls(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), address, timeout_s)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        conn.request("POST", target, body=body,
                     headers={"Content-Type": "application/json", "User-Agent": "earshot-webhook"})
        resp = conn.getresponse()
        resp.read(65536)
        if 200 <= resp.status < 300:
            return None
        if 300 <= resp.status < 400:
            where = mask_url(resp.getheader("Location") or "") or "(no Location)"
            return f"HTTP {resp.status}: redirect to {where[:200]} not followed"
        return f"HTTP {resp.status}"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    finally:
        conn.close()
