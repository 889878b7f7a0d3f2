"""A small explicit registry: names map to frozen config classes whose ``build()`` makes the object."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Names (kebab-case) to registered classes. Unknown names raise ``KeyError`` listing the known."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("pick-place")`` on a config class."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


class Builders:
    """Config type -> what builds its object (a class or a function taking the config first).

    The builder lives beside the model it builds and registers itself there, so a config never
    imports the model it configures (no import cycle): ``@BUILDERS.register(VLAConfig)`` on the
    model class, ``BUILDERS.build(config, ...)`` in ``config.build(...)``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[type, Callable[..., object]] = {}

    def register(
        self, config_type: type
    ) -> Callable[[Callable[..., object]], Callable[..., object]]:
        def add(builder: Callable[..., object]) -> Callable[..., object]:
            if config_type in self._builders:
                raise ValueError(f"a {self.kind} builder for {config_type.__name__} is registered")
            self._builders[config_type] = builder
            return builder

        return add

    def build(self, config: object, *args: object, **kwargs: object) -> object:
        try:
            builder = self._builders[type(config)]
        except KeyError:
            known = ", ".join(sorted(t.__name__ for t in self._builders)) or "(none)"
            raise KeyError(
                f"no {self.kind} builder for {type(config).__name__}; known: {known} "
                "(is the module defining the model imported?)"
            ) from None
        return builder(config, *args, **kwargs)
