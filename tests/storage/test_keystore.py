"""AES-GCM sealing of secrets at rest and the master key's file and environment forms."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certgate.errors import CertGateError
from certgate.storage.keystore import (
    FORMAT_V1,
    AESGCMSealer,
    MasterKeyError,
    SealError,
    load_or_create_master_key,
    master_key_from_env,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SEALER = AESGCMSealer(KEY)


def test_round_trip() -> None:
    blob = SEALER.seal(b"-----BEGIN PRIVATE KEY-----\n...", context="authority:abc")
    assert blob[0] == FORMAT_V1
    assert b"PRIVATE KEY" not in blob
    assert SEALER.unseal(blob, context="authority:abc") == b"-----BEGIN PRIVATE KEY-----\n..."
    assert AESGCMSealer(KEY).unseal(blob, context="authority:abc") == b"-----BEGIN PRIVATE KEY-----\n..."


@given(plaintext=st.binary(max_size=2048), context=st.text(max_size=64))
def test_round_trip_of_any_secret_and_context(plaintext: bytes, context: str) -> None:
    assert SEALER.unseal(SEALER.seal(plaintext, context=context), context=context) == plaintext


def test_every_seal_uses_a_fresh_nonce() -> None:
    assert SEALER.seal(b"same", context="c") != SEALER.seal(b"same", context="c")


def test_the_wrong_context_does_not_open() -> None:
    blob = SEALER.seal(b"secret", context="authority:abc")
    with pytest.raises(SealError) as err:
        SEALER.unseal(blob, context="authority:abd")
    assert err.value.reason == "seal.corrupt"
    assert isinstance(err.value, CertGateError)


def test_the_wrong_master_key_is_named_as_such() -> None:
    blob = SEALER.seal(b"secret", context="c")
    with pytest.raises(SealError) as err:
        AESGCMSealer(OTHER_KEY).unseal(blob, context="c")
    assert err.value.reason == "seal.wrong_key"


@pytest.mark.parametrize("position", [5, 10, 17, 20, -1])  # nonce, ciphertext, tag
def test_any_altered_byte_is_detected(position: int) -> None:
    blob = bytearray(SEALER.seal(b"secret payload", context="c"))
    blob[position] ^= 0x01
    with pytest.raises(SealError) as err:
        SEALER.unseal(bytes(blob), context="c")
    assert err.value.reason == "seal.corrupt"


def test_an_altered_key_id_reads_as_another_key() -> None:
    blob = bytearray(SEALER.seal(b"secret", context="c"))
    blob[1] ^= 0x01
    with pytest.raises(SealError) as err:
        SEALER.unseal(bytes(blob), context="c")
    assert err.value.reason == "seal.wrong_key"


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"", "seal.truncated"),
        (b"\x01" + b"\x00" * 31, "seal.truncated"),
        (b"\x02" + b"\x00" * 40, "seal.unknown_format"),
        (b"-----BEGIN PRIVATE KEY-----", "seal.unknown_format"),  # plaintext never passes
    ],
)
def test_malformed_blobs(blob: bytes, reason: str) -> None:
    with pytest.raises(SealError) as err:
        SEALER.unseal(blob, context="c")
    assert err.value.reason == reason


def test_needs_reseal() -> None:
    assert not SEALER.needs_reseal(SEALER.seal(b"x", context="c"))
    assert SEALER.needs_reseal(b"\x00old")


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_the_sealer_needs_a_32_byte_key(length: int) -> None:
    with pytest.raises(MasterKeyError):
        AESGCMSealer(b"k" * length)


# -- the key file --------------------------------------------------------------------------------


def test_the_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = load_or_create_master_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == key
    assert load_or_create_master_key(path) == key
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]  # no temporary left behind


def test_the_key_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_master_key(tmp_path / "master.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(KEY)
    path.chmod(mode)
    with pytest.raises(MasterKeyError) as err:
        load_or_create_master_key(path)
    assert err.value.reason == "master_key.permissions"
    assert "chmod 600" in err.value.message
    assert path.read_bytes() == KEY  # refused, not repaired or replaced


@pytest.mark.parametrize("content", [b"", b"short", KEY + b"\n", KEY * 2])
def test_a_key_file_of_the_wrong_length_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(MasterKeyError) as err:
        load_or_create_master_key(path)
    assert err.value.reason == "master_key.length"


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.mkdir(mode=0o700)
    with pytest.raises(MasterKeyError) as err:
        load_or_create_master_key(path)
    assert err.value.reason == "master_key.not_a_file"


def test_a_missing_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError) as err:
        load_or_create_master_key(tmp_path / "nope" / "master.key")
    assert err.value.reason == "master_key.no_directory"


def test_processes_racing_to_create_the_key_agree_on_it(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        keys.append(load_or_create_master_key(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(keys) == 8 and len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]


# -- the environment form ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        KEY.hex(),
        KEY.hex().upper(),
        base64.b64encode(KEY).decode(),
        base64.b64encode(KEY).decode().rstrip("="),
        base64.urlsafe_b64encode(KEY).decode(),
        f"  {base64.b64encode(KEY).decode()}\n",
    ],
)
def test_master_key_from_env_accepts_hex_and_base64(value: str) -> None:
    assert master_key_from_env(value) == KEY


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "master_key.length"),
        (KEY.hex()[:-2], "master_key.length"),
        (base64.b64encode(KEY[:16]).decode(), "master_key.length"),
        ("not base64 at all!", "master_key.encoding"),
    ],
)
def test_master_key_from_env_refuses_the_rest_without_echoing_it(value: str, reason: str) -> None:
    with pytest.raises(MasterKeyError) as err:
        master_key_from_env(value)
    assert err.value.reason == reason
    if value:
        assert value.strip() not in err.value.message
