"""Whether a host is reachable only from this machine: one answer for the engines' Host check, the
token they require beyond loopback, the warning about ``VOICEMODE_SERVICE_HOST`` and which endpoints
count as local. Standard library only."""

from __future__ import annotations

import ipaddress


def is_loopback_address(host: str) -> bool:
    """A bind address or host name that only this machine reaches: ``localhost``, 127/8, ``::1``."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)
