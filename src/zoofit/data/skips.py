"""Items a source or the protocol left out (an unreadable image, a sample without a label): counted, where and why,
so that a run says so in one line and records it in ``summary.json``. Torch-free: the result reads it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Items named in a skip, at most (the count says how many there are).
EXAMPLES = 3


@dataclass(frozen=True)
class Skipped:
    """``count`` items of ``where`` (a split, a shard, a folder) left out for ``reason``; the first few named."""

    where: str
    count: int
    reason: str
    examples: tuple[str, ...] = ()

    @classmethod
    def of(cls, where: str, reason: str, items: Sequence[str]) -> Skipped | None:
        """The skip of ``items`` (None where there are none)."""
        return cls(where, len(items), reason, tuple(items[:EXAMPLES])) if items else None

    def describe(self) -> str:
        more = ", ..." if self.count > len(self.examples) else ""
        named = f" ({', '.join(self.examples)}{more})" if self.examples else ""
        return f"{self.count} {self.reason} in {self.where}{named}"


def skipped_line(skips: Sequence[Skipped]) -> str | None:
    """One line saying what was skipped, where and why (None where nothing was)."""
    if not skips:
        return None
    return f"skipped {sum(s.count for s in skips)}: " + "; ".join(s.describe() for s in skips)


def happened(*skips: Skipped | None) -> tuple[Skipped, ...]:
    """The skips among ``skips`` that happened."""
    return tuple(s for s in skips if s is not None)
