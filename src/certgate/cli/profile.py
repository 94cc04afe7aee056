"""The CLI profile: which API endpoint the resource commands call, and with which access key.

A profile is one small JSON file (default ``~/.config/certgate/profile.json``, or
``$CERTGATE_PROFILE``), written atomically with mode 0600 because it holds the AccessKeySecret.
Environment variables override the file field by field, so scripts and CI need no file at all.
Nothing here prints; the secret never appears in a repr or an error message.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

PROFILE_FORMAT: Final = 1

ENV_PROFILE: Final = "CERTGATE_PROFILE"
ENV_OVERRIDES: Final = {
    "endpoint": "CERTGATE_ENDPOINT",
    "access_key_id": "CERTGATE_ACCESS_KEY_ID",
    "access_key_secret": "CERTGATE_ACCESS_KEY_SECRET",
    "instance_id": "CERTGATE_INSTANCE_ID",
    "ca_file": "CERTGATE_CA_FILE",
}
"""Profile field → the environment variable that overrides it."""

_FIELDS: Final = tuple(ENV_OVERRIDES)
_REQUIRED: Final = ("endpoint", "access_key_id", "access_key_secret")


class ProfileError(Exception):
    """The profile is missing, unreadable, malformed or incomplete (a usage problem, not an API one)."""


@dataclass(frozen=True, slots=True)
class Profile:
    endpoint: str | None = None
    """``http(s)://host:port`` of the API (what ``certgate up`` prints as the API endpoint)."""
    access_key_id: str | None = None
    access_key_secret: str | None = field(default=None, repr=False)
    instance_id: str | None = None
    """The account's plan instance, used by ``sites create`` when ``--instance-id`` is not given."""
    ca_file: str | None = None
    """PEM bundle to trust for an ``https://`` endpoint with a private CA."""

    def merged(self, overrides: Mapping[str, str | None]) -> Profile:
        """A copy with every non-empty override applied."""
        return replace(self, **{k: v for k, v in overrides.items() if k in _FIELDS and v})

    def missing(self) -> list[str]:
        return [name for name in _REQUIRED if not getattr(self, name)]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": PROFILE_FORMAT}
        data.update({name: getattr(self, name) for name in _FIELDS if getattr(self, name) is not None})
        return data


def default_path(env: Mapping[str, str]) -> Path:
    if env.get(ENV_PROFILE):
        return Path(env[ENV_PROFILE]).expanduser()
    config_home = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "certgate" / "profile.json"


def read_file(path: Path) -> Profile:
    """The profile stored at ``path``; an empty Profile when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Profile()
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"profile {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ProfileError(f"profile {path} must hold a JSON object")
    version = data.get("format", PROFILE_FORMAT)
    if version != PROFILE_FORMAT:
        raise ProfileError(
            f"profile {path} has format {version!r}; this certgate reads format {PROFILE_FORMAT}"
        )
    values: dict[str, str | None] = {}
    for name in _FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise ProfileError(f"profile {path}: {name} must be a string")
        values[name] = value
    return Profile(**values)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A complete profile: what a client needs to make signed calls."""

    endpoint: str
    access_key_id: str
    access_key_secret: str = field(repr=False)
    instance_id: str | None = None
    ca_file: str | None = None


def env_overrides(env: Mapping[str, str]) -> dict[str, str | None]:
    return {name: env.get(var) or None for name, var in ENV_OVERRIDES.items()}


def resolve(path: Path, env: Mapping[str, str], flags: Mapping[str, str | None] | None = None) -> Resolved:
    """File, then environment, then command-line flags; raises ProfileError when incomplete."""
    profile = read_file(path).merged(env_overrides(env)).merged(flags or {})
    missing = profile.missing()
    if missing:
        names = ", ".join(missing)
        raise ProfileError(
            f"no {names} configured: run 'certgate configure --endpoint URL --access-key-id ID "
            f"--access-key-secret SECRET' or set {', '.join(ENV_OVERRIDES[m] for m in missing)}"
        )
    return Resolved(
        endpoint=str(profile.endpoint),
        access_key_id=str(profile.access_key_id),
        access_key_secret=str(profile.access_key_secret),
        instance_id=profile.instance_id,
        ca_file=profile.ca_file,
    )


def permission_warning(path: Path) -> str | None:
    """A one-line warning when the profile (which holds a secret) is readable by others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        mode_text = f"{stat.S_IMODE(mode):o}"
        return f"profile {path} is accessible by other users (mode {mode_text}); run: chmod 600 {path}"
    return None


def write_file(path: Path, profile: Profile) -> None:
    """Replace ``path`` atomically with ``profile``, mode 0600 (directory created 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".profile-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)  # mkstemp already uses 0600; be explicit, the file holds a secret
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(profile.to_json(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
