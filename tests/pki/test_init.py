"""The package surface, and the purity rule of ARCHITECTURE.md for ``certgate.pki``."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import certgate.pki as pki

PKI_SOURCE = Path(pki.__file__).resolve().parent
ALLOWED_CERTGATE = {"certgate.pki", "certgate.errors"}


def test_public_names_resolve() -> None:
    assert len(set(pki.__all__)) == len(pki.__all__)
    for name in pki.__all__:
        assert getattr(pki, name) is not None, name
    # What the services, the API and the edge import by name.
    expected = {"ClientVerifier", "KeyType", "PKIError", "ClientCertificateRejected", "load_csr"}
    assert expected <= set(pki.__all__)


def _imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_imports_only_the_standard_library_cryptography_and_itself() -> None:
    for path in PKI_SOURCE.glob("*.py"):
        for module in _imports(path):
            top = module.split(".")[0]
            if top == "certgate":
                allowed = any(module == m or module.startswith(m + ".") for m in ALLOWED_CERTGATE)
                assert allowed, (path, module)
            else:
                assert top in sys.stdlib_module_names or top == "cryptography", (path, module)


def test_never_reads_the_clock_the_environment_or_the_disk() -> None:
    forbidden = {
        ("datetime", "now"),
        ("datetime", "utcnow"),
        ("datetime", "today"),
        ("time", "time"),
        ("os", "environ"),
        ("os", "getenv"),
    }
    for path in PKI_SOURCE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name | ast.Attribute):
                owner = node.value.attr if isinstance(node.value, ast.Attribute) else node.value.id
                assert (owner, node.attr) not in forbidden, (path, node.lineno)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", (path, node.lineno)
