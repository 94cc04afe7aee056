"""The id factory: shapes the wire and the CLI depend on."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from certgate.bootstrap import ensure_edge_token
from certgate.ids import RandomIdFactory
from certgate.settings import ControlPlaneSettings


def test_tokens_are_alphanumeric_and_never_look_like_a_flag() -> None:
    # A secret starting with "-" made `certgate configure --access-key-secret <it>` an argparse
    # error (seen in CI). Alphanumeric secrets cannot; 2,000 draws would show a leading "-"
    # from a URL-safe alphabet with probability 1 - (63/64)**2000 ~ 1.
    ids = RandomIdFactory()
    tokens = [ids.token(24) for _ in range(2000)]
    assert all(re.fullmatch(r"[A-Za-z0-9]+", t) for t in tokens)
    assert len(set(tokens)) == len(tokens)


def test_token_length_carries_the_requested_entropy() -> None:
    ids = RandomIdFactory()
    # log2(62) ~ 5.954 bits per character: 24 bytes -> 33 characters, 32 bytes -> 43.
    assert len(ids.token(24)) == 33
    assert len(ids.token(32)) == 43
    assert len(ids.token(1)) == 2


def test_hex_and_int_ids_keep_their_wire_shapes() -> None:
    ids = RandomIdFactory()
    assert re.fullmatch(r"[0-9a-f]{32}", ids.hex_id())
    n = ids.int_id()
    assert 1_000_000_000_000 <= n < 10_000_000_000_000_000


def test_the_edge_token_is_made_once_alphanumeric_and_private(tmp_path: Path) -> None:
    # It is passed as `certgate edge --token T` too, so it must never start with "-".
    settings = ControlPlaneSettings(data_dir=tmp_path / "data")
    settings.edge_token_path.parent.mkdir(parents=True)
    token = ensure_edge_token(settings)
    assert re.fullmatch(r"[A-Za-z0-9]{43}", token)
    assert stat.S_IMODE(settings.edge_token_path.stat().st_mode) == 0o600
    assert ensure_edge_token(settings) == token  # kept, not replaced
