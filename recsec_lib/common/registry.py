"""Families of registered objects: attackers, defenses, detectors, found by name.

The study is a grid of "every defense against every attacker". Each family
(query generators, attacker views, output defenses, model defenses, detectors)
is a ``Registry`` of classes, and each class registers itself where it is
defined::

    GENERATORS = Registry("query generator")

    @GENERATORS.register
    @dataclass(frozen=True)
    class RandomWalks(QueryGenerator):
        name: ClassVar[str] = "random"
        ...

    GENERATORS.build("random", seq_len=50)  # an instance, fields checked

Adding a member to a family is therefore one class in one file: the CLI, the
study and the tests all look members up here, so nothing else needs to know.
An unknown name is an error that lists the known ones (and the closest match).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Generic, TypeVar

from recsec_lib.common.settings import did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class of one family; ``build`` makes an instance from keyword settings."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: adds ``cls`` under ``cls.name`` (a class attribute). Two classes, one name: error."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"a registered {self.family} needs a class attribute 'name' (a non-empty str), "
                            f"{cls.__name__} has {name!r}")
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"{self.family} {name!r} is registered twice ({self._classes[name].__name__} "
                             f"and {cls.__name__})")
        self._classes[name] = cls
        return cls

    def unregister(self, name: str) -> None:
        """Remove a member (tests that register a toy member clean up with this)."""
        self._classes.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """Registered names in registration order."""
        return tuple(self._classes)

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``; an unknown name is a ValueError listing the known ones."""
        try:
            return self._classes[name]
        except (KeyError, TypeError):
            known = ", ".join(self._classes) or "none"
            raise ValueError(f"unknown {self.family} {name!r}{did_you_mean(str(name), self.names())} "
                             f"(known: {known})") from None

    def build(self, name: str, **settings) -> T:
        """An instance of ``name`` with ``settings`` as keyword arguments; an unknown setting is an error."""
        cls = self.get(name)
        if dataclasses.is_dataclass(cls):
            fields = [f.name for f in dataclasses.fields(cls) if f.init]
            unknown = sorted(set(settings) - set(fields))
            if unknown:
                hint = did_you_mean(unknown[0], fields)
                raise ValueError(f"{self.family} {name!r} has no setting {unknown[0]!r}{hint} "
                                 f"(its settings: {', '.join(fields) or 'none'})")
        return cls(**settings)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)
