"""A tiny name -> factory registry (the torchvision ``models/_api.py`` habit)."""
from __future__ import annotations

import re
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class Registry(Generic[T]):
    """Maps a short lower-case name to a factory. Duplicate names are refused."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        if not _NAME.match(name):
            raise ValueError(f"invalid {self.kind} name {name!r}: use [a-z][a-z0-9_]*")

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return deco

    def get(self, name: str) -> Callable[..., T]:
        if not isinstance(name, str) or name not in self._factories:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._factories[name]

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories
