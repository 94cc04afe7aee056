"""The installation's console secret: the key that signs session cookies.

Made once from the OS's CSPRNG and kept in a private file (0600) next to the database; every
control-plane replica must load the same one, or sessions will not survive a load balancer.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

SECRET_FILE_NAME: Final = "console-secret"
SECRET_BYTES: Final = 32


def load_or_create_secret(path: Path) -> bytes:
    """The secret in ``path``, created (O_EXCL, 0600) if the file does not exist yet."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(SECRET_BYTES))
    secret = path.read_bytes()
    if len(secret) < SECRET_BYTES:
        raise ValueError(f"{path} holds {len(secret)} bytes; a console secret needs {SECRET_BYTES}")
    return secret
