"""How a long batch reports its progress, to whoever shows it (the CLI draws bars): the batch calls
`progress(label, total)` as it starts a step and then the returned tick with each number of items
done. A batch given no progress reports nothing."""

from __future__ import annotations

from collections.abc import Callable

Tick = Callable[[int], None]
Progress = Callable[[str, int], Tick]


def ticker(progress: Progress | None, label: str, total: int) -> Tick:
    """The tick of a step: the caller's, or one that does nothing."""
    return progress(label, total) if progress is not None else _nothing


def _nothing(n: int) -> None:
    pass
