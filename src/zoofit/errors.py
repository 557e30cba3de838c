"""Errors that reach the user as one line (the CLI prints them without a traceback)."""


class ZoofitError(Exception):
    """A problem the user can fix; the message names the input and what to do."""


class ModelError(ZoofitError):
    """One model of the zoo cannot be used; the pipeline skips it and goes on with the others."""


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type's name where it has none), to quote in one line."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
