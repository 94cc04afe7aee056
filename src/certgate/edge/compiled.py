"""Which edge modules a production build compiles with mypyc, and whether this process runs them.

``CERTGATE_MYPYC=1 pip install .`` (``scripts/install`` without ``dev``) compiles `MYPYC_MODULES`
into C extensions; setup.py reads the list from this file. Every other install (the editable dev
install above all) runs the same modules as Python. `describe` is what ``certgate edge`` logs at
start-up, so an operator can see which build is in use.
"""

from __future__ import annotations

import importlib
import importlib.machinery

MYPYC_MODULES: tuple[str, ...] = (
    "certgate.edge.accesslog",
    "certgate.edge.clientauth",
    "certgate.edge.decision",
    "certgate.edge.headers",
    "certgate.edge.http1",
    "certgate.edge.ledger",
    "certgate.edge.metrics",
    "certgate.edge.pages",
    "certgate.edge.proxy",
    "certgate.edge.upstream",
)


def compiled_modules() -> dict[str, bool]:
    """Each module of `MYPYC_MODULES` → whether the imported module is a compiled extension."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    result = {}
    for name in MYPYC_MODULES:
        path = getattr(importlib.import_module(name), "__file__", None) or ""
        result[name] = path.endswith(suffixes)
    return result


def describe() -> str:
    """One line for the start-up log: compiled, interpreted, or which modules are which."""
    compiled = compiled_modules()
    count = sum(compiled.values())
    if count == len(compiled):
        return f"edge modules compiled with mypyc ({count} of {len(compiled)})"
    if count == 0:
        return "edge modules interpreted (pure Python build)"
    names = ", ".join(name.rsplit(".", 1)[1] for name, done in compiled.items() if done)
    return f"edge modules partly compiled with mypyc ({count} of {len(compiled)}: {names})"
