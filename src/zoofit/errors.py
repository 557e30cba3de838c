"""Errors that reach the user as one line (the CLI prints them without a traceback)."""

from __future__ import annotations

import re
from collections.abc import Callable

_NAMED = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class ZoofitError(Exception):
    """A problem the user can fix; the message names the input and what to do."""


class ParameterError(ZoofitError):
    """A parameter with a value the library cannot take. The message names each parameter as ``{name}``: as
    Python spells it (``top_k``) in ``str()``, and as each front end spells it (``--top-k``) in :meth:`spelled`.

    >>> str(ParameterError("{k} must be at least 1, not 0"))
    'k must be at least 1, not 0'
    >>> ParameterError("{k} must be at least 1, not 0").spelled(lambda name: "--" + name)
    '--k must be at least 1, not 0'
    """

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(self.spelled(str))

    @classmethod
    def of(cls, parameter: str, problem: str) -> ParameterError:
        """``parameter`` followed by ``problem`` (which may hold any text, braces included)."""
        return cls("{" + parameter + "} " + problem.replace("{", "{{").replace("}", "}}"))

    @property
    def parameters(self) -> list[str]:
        """The parameters the message names, in order."""
        return _NAMED.findall(self.message.replace("{{", "").replace("}}", ""))

    def spelled(self, spell: Callable[[str], str]) -> str:
        """The message with each parameter named by ``spell(name)``."""
        names = {name: spell(name) for name in self.parameters}
        return self.message.format_map(names)


class ModelError(ZoofitError):
    """One model of the zoo cannot be used; the pipeline skips it and goes on with the others."""

    @classmethod
    def failed(cls, model: str, error: Exception) -> ModelError:
        """``error``, raised while ``model`` was loaded or run, as the :class:`ModelError` that skips it: itself
        where it is one, else one line naming its type (an error of one of a thousand hub models, whatever its
        kind, skips that model). A :class:`ZoofitError` of another kind is about the run, not the model: raised."""
        if isinstance(error, ModelError):
            return error
        if isinstance(error, ZoofitError):
            raise error
        return cls(f"model '{model}' failed: {type(error).__name__}: {first_line(error)}")


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type's name where it has none), to quote in one line."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
