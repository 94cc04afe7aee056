"""The action registry: every ESA action certgate serves, declared once.

An ``Action`` names its HTTP method (the one the official SDK uses), its parameters, its
response fields and the handler that turns decoded parameters into a response through the
services. The RPC endpoint dispatches through it, the API reference is generated from it, and
tests check live responses against its declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from certgate.api.wire import Field, Param, Params, f
from certgate.model import Account
from certgate.services.context import ServiceContext

API_VERSION = "2024-09-10"
REQUEST_ID = f("RequestId", "str", "request id (uppercase UUID), also in every error body")


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated invocation: the services, the caller's account, the decoded parameters."""

    ctx: ServiceContext
    account: Account
    params: Params


Handler = Callable[[Call], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    group: str
    method: str
    summary: str
    params: tuple[Param, ...]
    fields: tuple[Field, ...]
    handler: Handler
    mutates: bool  # a successful call may change the edge configuration (wakes snapshot waiters)
    errors: tuple[str, ...] = ()  # reasons worth listing in the reference for this action

    @property
    def response(self) -> tuple[Field, ...]:
        return (REQUEST_ID, *self.fields)


class Registry:
    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def action(
        self,
        name: str,
        *,
        group: str,
        method: str,
        summary: str,
        params: tuple[Param, ...],
        fields: tuple[Field, ...],
        mutates: bool,
        errors: tuple[str, ...] = (),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            if name in self._actions:
                raise ValueError(f"action {name} is registered twice")
            names = [p.name for p in params]
            if len(set(names)) != len(names):
                raise ValueError(f"action {name} declares a parameter twice")
            self._actions[name] = Action(
                name, group, method, summary, params, fields, handler, mutates, errors
            )
            return handler

        return register

    def get(self, name: str) -> Action | None:
        return self._actions.get(name)

    def __iter__(self) -> Iterator[Action]:
        return iter(sorted(self._actions.values(), key=lambda a: (a.group, a.name)))

    def __len__(self) -> int:
        return len(self._actions)


REGISTRY = Registry()
