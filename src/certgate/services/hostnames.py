"""Hostname normalisation and site membership (PRODUCT §3).

Names are lowercased, IDNs turned to punycode (IDNA 2008 via ``idna``, UTS 46 mapping), one
trailing dot dropped, and checked label by label. ``*.example.com`` (one leading wildcard label)
is allowed where the caller says so. Ports, paths, schemes and empty labels are refused.
"""

from __future__ import annotations

import re

import idna

from certgate.errors import InvalidArgument

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_MAX_NAME = 253


def normalize_hostname(raw: str, *, allow_wildcard: bool = False) -> str:
    if not isinstance(raw, str):
        raise InvalidArgument("hostname must be a string", reason="hostname.malformed")
    name = raw.strip()
    if not name:
        raise InvalidArgument("hostname is empty", reason="hostname.malformed")
    if any(c in name for c in ":/?#@[]\\"):
        raise InvalidArgument(
            f"hostname {raw!r} must be a bare name without scheme, port or path",
            reason="hostname.port_or_path",
        )
    if name.endswith("."):
        name = name[:-1]
    wildcard = name.startswith("*.")
    rest = name[2:] if wildcard else name
    if wildcard and not allow_wildcard:
        raise InvalidArgument(f"wildcard hostname {raw!r} is not allowed here", reason="hostname.malformed")
    try:
        ascii_name = rest.encode("ascii").decode().lower()
    except UnicodeEncodeError:
        try:
            ascii_name = idna.encode(rest, uts46=True).decode()
        except idna.IDNAError as exc:
            raise InvalidArgument(
                f"hostname {raw!r} is not a valid internationalised name: {exc}",
                reason="hostname.malformed",
            ) from None
    labels = ascii_name.split(".")
    if len(ascii_name) > _MAX_NAME or len(labels) < 2 or not all(_LABEL.match(lb) for lb in labels):
        raise InvalidArgument(f"hostname {raw!r} is malformed", reason="hostname.malformed")
    if labels[-1].isdigit():
        raise InvalidArgument(f"{raw!r} is an IP address, not a hostname", reason="hostname.malformed")
    return ("*." if wildcard else "") + ascii_name


def belongs_to_site(hostname: str, site_name: str) -> bool:
    bare = hostname[2:] if hostname.startswith("*.") else hostname
    if hostname.startswith("*."):
        return bare == site_name or bare.endswith("." + site_name)
    return hostname == site_name or hostname.endswith("." + site_name)


def normalize_site_hostnames(raw: list[str], site_name: str, *, limit: int) -> tuple[str, ...]:
    """Validate a whole binding list: all or nothing, duplicates folded, order kept."""
    if len(raw) > limit:
        raise InvalidArgument(
            f"at most {limit} hostnames can be set in one call ({len(raw)} given)",
            reason="hostname.too_many",
        )
    out: dict[str, None] = {}
    for item in raw:
        name = normalize_hostname(item, allow_wildcard=True)
        if not belongs_to_site(name, site_name):
            raise InvalidArgument(
                f"hostname {name} does not belong to site {site_name}", reason="hostname.foreign_site"
            )
        out[name] = None
    return tuple(out)
