"""The CLI profile file: where it lives, how it is written (0600, atomically) and how the
environment and flags override it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from certgate.cli.profile import (
    PROFILE_FORMAT,
    Profile,
    ProfileError,
    default_path,
    permission_warning,
    read_file,
    resolve,
    write_file,
)

FULL = Profile(endpoint="http://127.0.0.1:8080", access_key_id="AKID", access_key_secret="s3cret")


def test_default_path_prefers_certgate_profile_then_xdg_then_home(tmp_path: Path) -> None:
    assert default_path({"CERTGATE_PROFILE": str(tmp_path / "p.json")}) == tmp_path / "p.json"
    assert default_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "certgate" / "profile.json"
    assert default_path({}) == Path.home() / ".config" / "certgate" / "profile.json"


def test_write_file_is_private_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "certgate" / "profile.json"
    write_file(path, FULL)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {
        "format": PROFILE_FORMAT,
        "endpoint": "http://127.0.0.1:8080",
        "access_key_id": "AKID",
        "access_key_secret": "s3cret",
    }
    assert read_file(path) == FULL
    assert os.listdir(path.parent) == ["profile.json"]  # no temporary file left behind


def test_write_file_replaces_and_keeps_mode_even_if_old_file_was_open(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_file(path, FULL)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_file(path).access_key_secret == "s3cret"


def test_missing_file_reads_as_empty_profile(tmp_path: Path) -> None:
    assert read_file(tmp_path / "absent.json") == Profile()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"format": 99}', "has format 99"),
        ('{"endpoint": 8080}', "endpoint must be a string"),
    ],
)
def test_malformed_profiles_are_refused_clearly(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "profile.json"
    path.write_text(content)
    with pytest.raises(ProfileError, match=message):
        read_file(path)


def test_resolve_layers_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    write_file(path, Profile(endpoint="http://file:1", access_key_id="FILE", access_key_secret="file-secret"))
    env = {"CERTGATE_ACCESS_KEY_ID": "ENV", "CERTGATE_INSTANCE_ID": "inst-env", "CERTGATE_ENDPOINT": ""}
    resolved = resolve(path, env, {"endpoint": "http://flag:3", "access_key_id": None})
    assert resolved.endpoint == "http://flag:3"
    assert resolved.access_key_id == "ENV"
    assert resolved.access_key_secret == "file-secret"
    assert resolved.instance_id == "inst-env"


def test_resolve_works_from_environment_alone(tmp_path: Path) -> None:
    env = {
        "CERTGATE_ENDPOINT": "http://e:1",
        "CERTGATE_ACCESS_KEY_ID": "A",
        "CERTGATE_ACCESS_KEY_SECRET": "S",
    }
    resolved = resolve(tmp_path / "none.json", env)
    assert (resolved.endpoint, resolved.access_key_id, resolved.access_key_secret) == ("http://e:1", "A", "S")


def test_resolve_names_what_is_missing_and_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        resolve(tmp_path / "none.json", {"CERTGATE_ENDPOINT": "http://e:1"})
    text = str(info.value)
    assert "access_key_id, access_key_secret" in text
    assert "certgate configure" in text
    assert "CERTGATE_ACCESS_KEY_ID" in text and "CERTGATE_ACCESS_KEY_SECRET" in text


def test_secret_is_not_in_any_repr(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    write_file(path, FULL)
    assert "s3cret" not in repr(FULL)
    assert "s3cret" not in repr(resolve(path, {}))


def test_permission_warning_only_for_group_or_world_access(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    write_file(path, FULL)
    assert permission_warning(path) is None
    path.chmod(0o644)
    warning = permission_warning(path)
    assert warning is not None and "chmod 600" in warning and "644" in warning
    assert permission_warning(tmp_path / "absent.json") is None
