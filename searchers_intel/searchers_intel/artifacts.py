"""What the searchers of this package make of an artifact's value before asking a provider."""
from __future__ import annotations

import ipaddress
from typing import Any, Optional, Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def public_ip(value: Any) -> Optional[IPAddress]:
    """The address in ``value`` if it is one on the public Internet; None for anything else
    (not an address, or private, loopback, link-local, documentation, reserved...), which no
    reputation provider has anything on: looking it up would only spend the quota."""
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address if address.is_global else None
