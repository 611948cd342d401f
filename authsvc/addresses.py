"""The client's address, as the login limits count it.

``X-Forwarded-For`` is believed only when the TCP peer is one of
``AUTHSVC_TRUSTED_PROXIES``. All of its header lines form one list, in order
(RFC 9110 §5.3: a recipient may combine repeated field lines with commas), and
each proxy appends the address it received the request from. So the client is
the rightmost entry that is not a trusted proxy: everything left of it was
written by the client itself and proves nothing. The web server's own
proxy-header handling is off (``serve`` passes ``proxy_headers=False``), so
this is the only place that decides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

__all__ = ["Network", "client_address"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_ENTRY = 64  # longer entries are not addresses; kept short as an opaque key


def _ip(entry: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An entry as an address: ``1.2.3.4``, ``1.2.3.4:5678``, ``::1``, ``[::1]:80``."""
    text = entry.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, trusted: Sequence[Network]) -> bool:
    return ip is not None and any(ip in network for network in trusted)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address: the peer, or behind trusted proxies the rightmost untrusted hop.

    ``forwarded_for`` is every ``X-Forwarded-For`` line of the request, in order.
    An untrusted hop that is not an address is returned as it is (cut short): it
    is as good a key as any for counting, and falling back to the proxy's own
    address would let one client's junk lock out everyone behind that proxy.
    """
    address = peer or "unknown"
    if not forwarded_for or not _trusted(_ip(address), trusted):
        return address
    hops = [hop.strip() for line in forwarded_for for hop in line.split(",") if hop.strip()]
    for hop in reversed(hops):
        ip = _ip(hop)
        if not _trusted(ip, trusted):
            return str(ip) if ip is not None else hop[:MAX_ENTRY]
    return str(_ip(hops[0])) if hops else address
