"""certgate's PEP 517 build backend: setuptools, plus what a mypyc build needs when asked for one.

``CERTGATE_MYPYC=1`` makes setup.py compile the edge's hot modules with mypyc. Only then does a
build need more than setuptools: mypy (which ships mypyc), pinned to the version the compiled
build is tested with, and certgate's own runtime dependencies, so that mypyc sees the same types
(cryptography, httptools, ...) as the project's ``mypy`` run and compiles the same checks. The
default build and the editable dev install ask for nothing extra and compile nothing.

An editable install with ``CERTGATE_MYPYC=1`` is refused: it would build the extensions next to
the sources in ``src/``, where they shadow every later edit of the ``.py`` files.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (every hook not redefined below)

MYPY_REQUIREMENT = "mypy==2.4.1"


def mypyc_requested() -> bool:
    value = os.environ.get("CERTGATE_MYPYC", "")
    if value not in ("", "0", "1"):
        raise RuntimeError(f"CERTGATE_MYPYC must be 1 (compile the edge) or 0/unset, not {value!r}")
    return value == "1"


def _runtime_dependencies() -> list[str]:
    with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    if not mypyc_requested():
        return _setuptools.get_requires_for_build_wheel(config_settings)
    # setuptools' own hook would run setup.py, which needs mypyc in this mode; setup.py declares
    # no setup_requires, so that hook has nothing to add.
    return [MYPY_REQUIREMENT, *_runtime_dependencies()]


def _refuse_editable() -> None:
    if mypyc_requested():
        raise RuntimeError(
            "CERTGATE_MYPYC=1 builds compiled modules, which an editable install would put into src/ "
            "(shadowing edits of the .py files): install without -e, or unset CERTGATE_MYPYC"
        )


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    _refuse_editable()
    return _setuptools.get_requires_for_build_editable(config_settings)


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    _refuse_editable()
    return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)


if mypyc_requested():
    # Without this hook the frontend builds the wheel once and reads the metadata from it, instead
    # of running setup.py (and so mypyc) once for the metadata and again for the wheel.
    del prepare_metadata_for_build_wheel  # noqa: F821
