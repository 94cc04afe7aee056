"""certgate's build script. The package is described in pyproject.toml; this file only adds the
optional mypyc build of the edge's hot modules.

``CERTGATE_MYPYC=1 pip install .`` compiles the modules listed in src/certgate/edge/compiled.py
(the backend in build_backend/ then provides mypy and certgate's dependencies to the build).
Without a C compiler that build fails, loudly: set CERTGATE_MYPYC=0 (or leave it unset) for the
pure-Python package, which behaves the same and is slower. Unset, nothing is compiled.
"""

from __future__ import annotations

import os
import runpy
from typing import Any

from setuptools import setup


def edge_extensions() -> list[Any]:
    if os.environ.get("CERTGATE_MYPYC", "") != "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        raise SystemExit(
            "CERTGATE_MYPYC=1 needs mypy (which ships mypyc) in the build environment; pip's build "
            "isolation installs it (see build_backend/certgate_build.py)"
        ) from exc
    modules = runpy.run_path(os.path.join("src", "certgate", "edge", "compiled.py"))["MYPYC_MODULES"]
    paths = [os.path.join("src", *name.split(".")) + ".py" for name in modules]
    # The project's mypy configuration (strict) applies: a type error fails the build.
    return mypycify(["--config-file", "pyproject.toml", *paths], opt_level="3", group_name="certgate_edge")


setup(ext_modules=edge_extensions())
