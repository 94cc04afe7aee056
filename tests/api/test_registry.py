"""The action registry against the official SDK's own code: same actions as the issue, same HTTP
method, every parameter the SDK can send declared (so none is silently dropped), each where the
SDK puts it."""

from __future__ import annotations

import inspect
import re

import pytest
from alibabacloud_esa20240910 import models as esa
from alibabacloud_esa20240910.client import Client

from certgate.api.registry import REGISTRY, Registry
from certgate.api.wire import Where, q

ISSUE_ACTIONS = {
    "CreateClientCertificate", "GetClientCertificate", "ListClientCertificates", "RevokeClientCertificate",
    "ActivateClientCertificate", "DeleteClientCertificate", "SetClientCertificateHostnames",
    "GetClientCertificateHostnames", "UploadClientCaCertificate", "GetClientCaCertificate",
    "ListClientCaCertificates", "DeleteClientCaCertificate", "SetClientCaCertificateHostnames",
    "GetClientCaCertificateHostnames", "CreateSite", "GetSite", "ListSites", "DeleteSite", "CreateRecord",
    "ListRecords", "DeleteRecord", "CreateWafRule", "GetWafRule", "ListWafRules", "UpdateWafRule",
    "DeleteWafRule", "CreateOriginRule", "ListOriginRules", "DeleteOriginRule", "SetCertificate",
}  # fmt: skip


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def sdk_wire(action: str) -> tuple[str, dict[str, Where]]:
    """(HTTP method, {param: where}) as the SDK's ``<action>_with_options`` sends them."""
    source = inspect.getsource(getattr(Client, f"{snake(action)}_with_options"))
    method = re.search(r"method = '(\w+)'", source)
    assert method is not None
    # Actions with JSON ("shrink") parameters send the Shrink twin of their request model.
    request_class = getattr(esa, f"{action}ShrinkRequest", None) or getattr(esa, f"{action}Request")
    keys = re.findall(r"result\['(\w+)'\] = self\.", inspect.getsource(request_class))
    if "to_map()" in source:  # the whole request goes into the query
        return method.group(1), {k: Where.QUERY for k in keys}
    where = {k: Where.QUERY for k in re.findall(r"query\['(\w+)'\]", source)}
    where.update({k: Where.BODY for k in re.findall(r"body\['(\w+)'\]", source)})
    assert set(where) == set(keys), action
    return method.group(1), where


def test_registry_serves_exactly_the_issue_actions() -> None:
    assert {a.name for a in REGISTRY} == ISSUE_ACTIONS


@pytest.mark.parametrize("name", sorted(ISSUE_ACTIONS))
def test_action_matches_the_sdk(name: str) -> None:
    action = REGISTRY.get(name)
    assert action is not None
    method, where = sdk_wire(name)
    assert action.method == method
    declared = {p.name: p.where for p in action.params}
    assert declared == where


def test_every_action_is_documented() -> None:
    for action in REGISTRY:
        assert action.summary and action.group
        for param in action.params:
            assert param.doc, f"{action.name}.{param.name}"
        for field in action.response:
            if field.kind not in ("shape", "list[shape]"):
                continue
            assert field.shape is not None and field.shape.fields


def test_registry_refuses_duplicates() -> None:
    registry = Registry()
    registry.action("A", group="g", method="GET", summary="s", params=(), fields=(), mutates=False)(
        lambda c: {}
    )
    with pytest.raises(ValueError, match="twice"):
        registry.action("A", group="g", method="GET", summary="s", params=(), fields=(), mutates=False)(
            lambda c: {}
        )
    with pytest.raises(ValueError, match="parameter twice"):
        registry.action(
            "B", group="g", method="GET", summary="s", params=(q("X"), q("X")), fields=(), mutates=False
        )(lambda c: {})
