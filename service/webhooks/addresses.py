"""The address guard: webhook URLs must reach the public internet.

A receiver's host is resolved and every address it resolves to must be public: loopback,
private (RFC 1918, IPv6 unique-local), link-local (which holds the cloud metadata service,
169.254.169.254), carrier-grade NAT, multicast, reserved and unspecified addresses are refused,
also when written as an IPv4-mapped IPv6 address. The check runs when a webhook is registered and
again before every attempt, since DNS may answer differently later; deliveries never follow
redirects. `webhooks.allow_private = true` lifts it (tests, a laptop).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_METADATA_V6 = ipaddress.ip_network("fd00:ec2::/32")  # AWS's IPv6 metadata endpoint


class AddressRefused(Exception):
    """The URL is not one a webhook may call; the message says why."""


def check_form(url: str) -> tuple[str, int]:
    """Host and port of an absolute http(s) URL without credentials; raises AddressRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise AddressRefused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise AddressRefused("the URL must be http or https")
    if not parts.hostname:
        raise AddressRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise AddressRefused("the URL must not carry credentials")
    if parts.fragment:
        raise AddressRefused("the URL must not have a fragment")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return is_public(str(mapped))
        if ip in _METADATA_V6:
            return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


RESOLVE_SECONDS = 5.0


async def check_url(url: str, allow_private: bool) -> list[str]:
    """The addresses `url`'s host resolves to, all of them public unless `allow_private`.
    Raises AddressRefused (a bad form, a name that does not resolve, a non-public address)."""
    host, port = check_form(url)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        raise AddressRefused(f"the host '{host}' does not resolve") from exc
    except UnicodeError:  # the IDNA codec refuses the name (an empty or 64+ character label)
        raise AddressRefused(f"the host '{host[:100]}' is not a valid host name") from None
    addresses = sorted({str(info[4][0]) for info in infos})
    if not allow_private:
        refused = [a for a in addresses if not is_public(a)]
        if refused:
            raise AddressRefused(
                f"'{host}' resolves to {', '.join(refused)}, which is not a public address"
            )
    return addresses
