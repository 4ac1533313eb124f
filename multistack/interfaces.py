"""Interfaces of this network namespace: names, MAC and addresses."""

from __future__ import annotations

import netifaces


def list_interfaces() -> list[dict]:
    """Every interface, sorted by name, with its MAC and IP addresses."""
    result = []
    for name in sorted(netifaces.interfaces()):
        addrs = netifaces.ifaddresses(name)
        link = addrs.get(netifaces.AF_LINK, [])
        mac = next((a.get("addr") for a in link if a.get("addr")), None)
        result.append({
            "name": name,
            "mac": mac,
            "ipv4": [a["addr"] for a in addrs.get(netifaces.AF_INET, []) if "addr" in a],
            # netifaces appends "%scope" to link-local addresses.
            "ipv6": [a["addr"].split("%")[0] for a in addrs.get(netifaces.AF_INET6, []) if "addr" in a],
        })
    return result
