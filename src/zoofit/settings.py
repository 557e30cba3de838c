"""Settings declared once: a dataclass field made with :func:`setting` carries its default, its help (a front end's
option) and its check, so that a config's options, help, defaults and checks all derive from the one field.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Knobs:
...     steps: int = setting(10, "Training steps.", *at_least(1))
>>> [name for name, _ in option_fields(Knobs)]
['steps']
>>> check_settings(Knobs(0))
Traceback (most recent call last):
zoofit.errors.ParameterError: steps must be at least 1, not 0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, field, fields, replace
from typing import Any

from zoofit.checks import is_number, is_whole
from zoofit.errors import ParameterError


def setting(
    default: Any,
    help: str,
    check: Callable[[Any], bool] | None = None,
    problem: str = "",
    *,
    option: bool = True,
    parse: Callable[[str], Any] | None = None,
) -> Any:
    """A config's field, with everything said of it once: its default, its ``help`` (the CLI's option, where
    ``option``), and the ``check`` its values must pass, else ``problem`` is the error. ``parse`` reads the
    option's text where the value is not written as it is (a duration), raising ``ValueError``."""
    metadata = {"help": help, "check": check, "problem": problem, "option": option, "parse": parse}
    return field(default=default, metadata=metadata)


def at_least(low: float, *, none: bool = False, whole: bool = True) -> tuple[Callable[[Any], bool], str]:
    """The check and problem of a (whole, where ``whole``) number of at least ``low`` (or None, where ``none``)."""
    kind = is_whole if whole else is_number
    return (lambda v: (none and v is None) or (kind(v) and v >= low)), f"must be at least {low}"


def positive(*, whole: bool) -> tuple[Callable[[Any], bool], str]:
    """The check and problem of a non-empty tuple of positive numbers (whole ones, where ``whole``)."""
    kind = is_whole if whole else is_number
    return (lambda v: bool(v) and all(kind(x) and x > 0 for x in v)), f"must be positive{' whole' * whole} numbers"


def each_at_least(low: int) -> tuple[Callable[[Any], bool], str]:
    """The check and problem of a non-empty tuple of whole numbers, each at least ``low``."""
    return (lambda v: bool(v) and all(is_whole(x) and x >= low for x in v)), f"must be whole numbers of at least {low}"


def between_0_and_1(*, none: bool = False) -> tuple[Callable[[Any], bool], str]:
    """The check and problem of a share strictly between 0 and 1 (or None, where ``none``)."""
    return (lambda v: (none and v is None) or (is_number(v) and 0.0 < v < 1.0)), "must lie strictly between 0 and 1"


#: How a resolution says "each model's own": ``None`` in Python (``null`` in ``config.yaml``), ``own`` as an option.
OWN_SIZE = "own"


def parse_size(text: str) -> int | None:
    """A resolution's option text: pixels, or ``own`` (each model's own: ``None``); ``ValueError`` otherwise."""
    if text.strip().lower() == OWN_SIZE:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"'{text}' is neither pixels nor {OWN_SIZE} (each model's own resolution)") from None


def check_settings(config: Any) -> None:
    """Raise a :class:`ParameterError` naming the first setting of ``config`` that fails its check."""
    for item in fields(config):
        check, value = item.metadata.get("check"), getattr(config, item.name)
        if check is not None and not check(value):
            raise ParameterError.of(item.name, f"{item.metadata['problem']}, not {value!r}")


def option_fields(kind: type) -> list[tuple[str, Field[Any]]]:
    """The settings of the config class ``kind`` that a front end offers as options, in order."""
    return [(f.name, f) for f in fields(kind) if f.metadata.get("option")]


def changed(config: Any, what: str, **values: Any) -> Any:
    """``config`` with the given ``values`` replaced (``None`` values are ignored), unchecked; a name that is not
    one of its settings is a :class:`ParameterError` listing the ``what`` settings a front end offers."""
    unknown = sorted(set(values) - {f.name for f in fields(config)})
    if unknown:
        offered = ", ".join(name for name, _ in option_fields(type(config)))
        raise ParameterError.of(unknown[0], f"is not a {what} setting; the settings are {offered}")
    return replace(config, **{name: value for name, value in values.items() if value is not None})
