"""One settings mechanism for every stage and every trained piece: profiles as tables, overrides by name.

A settings class is a frozen dataclass that also inherits ``SettingsBase``::

    @dataclass(frozen=True)
    class Settings(SettingsBase):
        epochs: int = 200
        lambdas: tuple[float, ...] = (0.1, 1.0)

        PROFILES = {"smoke": {"epochs": 2}, "cpu": {"epochs": 20}, "full": {}}

``Settings.for_profile("smoke")`` is the defaults with the smoke row on top;
``settings.with_overrides(epochs=5, lambdas="0.1,1")`` is a copy with the given
values. Both go through the same checks, so a profile row cannot hold what an
override would refuse:

* a value of ``None`` keeps the current one (a notebook parameter left at ``None``
  means "the profile's value");
* values are converted from the field's annotation: ``"a,b"`` text and lists
  become tuples (``tuple[int, ...]``, ``tuple[float, ...]``, ``tuple[str, ...]``;
  ``""`` is the empty tuple, one value a tuple of one), ``yes/no/true/false`` a
  bool, numeric text or an int a float, numeric text an int; for ``X | None``
  fields the text ``none`` is ``None``;
* a value of another type is an error naming the setting, the class and the
  type it takes; an unknown name is an error naming it, with the closest known
  name ("did you mean") and the list of known names.

Checks between fields, and of ranges, stay in each class's ``__post_init__``:
they run on every copy.

Layer 0: it imports nothing of the project, so any layer's settings can use it.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from typing import Any, ClassVar, Mapping

TRUE_WORDS = ("yes", "true")
FALSE_WORDS = ("no", "false")
_SPLIT = re.compile(r"[,\s]+")


class SettingsError(ValueError):
    """A bad profile, setting name or value (a ValueError, so callers that catch those keep working)."""


class UnsupportedAnnotation(TypeError):
    """A field's annotation is none of the types this mechanism converts (a mistake in the class, not the value)."""


def did_you_mean(name: str, known: typing.Iterable[str]) -> str:
    """"; did you mean 'epochs'?" when a known name is close to ``name``, else ""."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_name_message(kind: str, name: str, known: typing.Iterable[str], owner: str = "") -> str:
    """The one wording of "no such name": the name, a did-you-mean, and the known names."""
    known = sorted(known)
    where = f" of {owner}" if owner else ""
    return f"unknown {kind} {name!r}{where}{did_you_mean(name, known)} (known: {', '.join(known) or 'none'})"


class SettingsBase:
    """Mixin for frozen dataclasses: ``for_profile`` from the ``PROFILES`` table, ``with_overrides`` by name."""

    # profile name -> {setting: value} on top of the class's defaults; a class without profiles leaves it empty
    PROFILES: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    @classmethod
    def settings_name(cls) -> str:
        """How errors name the class: its module and name (every stage's class is called Settings)."""
        return f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def for_profile(cls, profile: str):
        """The defaults with the profile's row of ``PROFILES`` on top; an unknown profile names the known ones."""
        if profile not in cls.PROFILES:
            raise SettingsError(unknown_name_message("profile", str(profile), cls.PROFILES, cls.settings_name()))
        return cls().with_overrides(**cls.PROFILES[profile])

    def with_overrides(self, **values):
        """A copy with every value that is not None converted to its field's type and put in place."""
        cls = type(self)
        known = cls.setting_names()
        for name in values:
            if name not in known:
                raise SettingsError(unknown_name_message("setting", name, known, cls.settings_name()))
        hints = _type_hints(cls)
        changes = {name: convert(value, hints[name], name, cls.settings_name())
                   for name, value in values.items() if value is not None}
        return dataclasses.replace(self, **changes)


def _type_hints(cls) -> dict[str, Any]:
    # cached per class: get_type_hints evaluates the (string) annotations of ``from __future__ import annotations``
    cached = cls.__dict__.get("_settings_type_hints")
    if cached is None:
        cached = typing.get_type_hints(cls)
        setattr(cls, "_settings_type_hints", cached)
    return cached


def type_label(annotation) -> str:
    """``tuple[int, ...]`` -> "a list of int (such as '1,2' or a tuple)", ``int | None`` -> "int or none"."""
    inner, optional = _unwrap_optional(annotation)
    if typing.get_origin(inner) is tuple:
        label = f"a list of {_scalar_name(typing.get_args(inner)[0])} (text such as 'a,b', or a sequence)"
    elif inner is bool:
        label = "bool (True/False, or yes/no/true/false)"
    else:
        label = _scalar_name(inner)
    return f"{label} or None" if optional else label


def convert(value, annotation, name: str, owner: str):
    """``value`` as the type ``annotation`` declares; raises SettingsError naming setting, class and type."""
    inner, optional = _unwrap_optional(annotation)
    if optional and isinstance(value, str) and value.strip().lower() == "none":
        return None
    try:
        if typing.get_origin(inner) is tuple:
            return _convert_tuple(value, inner)
        return _convert_scalar(value, inner)
    except UnsupportedAnnotation:
        raise
    except (TypeError, ValueError):
        raise SettingsError(f"setting {name!r} of {owner} takes {type_label(annotation)}, "
                            f"got {value!r} ({type(value).__name__})") from None


def _unwrap_optional(annotation) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
        raise UnsupportedAnnotation(f"settings support X | None unions only, not {annotation}")
    return annotation, False


def _convert_tuple(value, annotation) -> tuple:
    args = typing.get_args(annotation)
    if len(args) != 2 or args[1] is not Ellipsis:
        raise UnsupportedAnnotation(f"settings support tuple[X, ...] only, not {annotation}")
    if isinstance(value, str):
        parts = [part for part in _SPLIT.split(value.strip()) if part]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]  # one value: a tuple of one
    return tuple(_convert_scalar(part, args[0]) for part in parts)


def _convert_scalar(value, kind):
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int):
            return value
        if hasattr(value, "__index__"):  # numpy integers
            return int(value.__index__())
        if isinstance(value, str):
            return int(value.strip())
        raise ValueError(value)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, (int, float)) or (hasattr(value, "__float__") and not isinstance(value, str)):
            return float(value)  # an int, or a numpy number
        if isinstance(value, str):
            return float(value.strip())
        raise ValueError(value)
    if kind is str:
        if isinstance(value, str):
            return value
        raise ValueError(value)
    raise UnsupportedAnnotation(f"settings support int, float, bool, str, tuple[X, ...] and X | None, not {kind}")


def _scalar_name(kind) -> str:
    return getattr(kind, "__name__", str(kind))
