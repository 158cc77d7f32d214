"""Which frames were applied, per producer: a floor and the sequences above it."""

from __future__ import annotations

from typing import Any


class Dedup:
    """Remembers the ``(producer, sequence)`` of every frame applied.

    Per producer: ``floor`` (every sequence below it counts as applied) and
    the set of applied sequences at or above it; the floor moves up as the
    set fills the gap above it, so with in-order delivery the set stays
    empty. A producer seen for the first time starts at the sequence of its
    first frame (a queue delivers one producer's frames in order, redeliveries
    included, so the first seen is its oldest). If the set grows past
    ``max_pending`` (a sequence lost for good), the floor jumps to the
    smallest pending sequence and the skipped sequences are counted in
    :attr:`gaps`.

    >>> d = Dedup()
    >>> d.add(7, 1), d.add(7, 2), d.add(7, 2)
    (True, True, False)
    >>> d.floor(7)
    3
    """

    def __init__(self, max_pending: int = 4096) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self._max = max_pending
        self._floor: dict[int, int] = {}
        self._above: dict[int, set[int]] = {}
        self.gaps = 0

    def seen(self, producer: int, sequence: int) -> bool:
        """``True`` if this frame was applied already."""
        floor = self._floor.get(producer)
        if floor is None:
            return False
        return sequence < floor or sequence in self._above[producer]

    def add(self, producer: int, sequence: int) -> bool:
        """Record the frame as applied; ``False`` if it already was."""
        if self.seen(producer, sequence):
            return False
        floor = self._floor.setdefault(producer, sequence)
        above = self._above.setdefault(producer, set())
        above.add(sequence)
        while floor in above:
            above.discard(floor)
            floor += 1
        if len(above) > self._max:
            low = min(above)
            self.gaps += low - floor
            floor = low
            while floor in above:
                above.discard(floor)
                floor += 1
        self._floor[producer] = floor
        return True

    def floor(self, producer: int) -> int | None:
        """The producer's floor, ``None`` if never seen."""
        return self._floor.get(producer)

    def state(self) -> dict[str, Any]:
        """A JSON-ready copy (for a checkpoint)."""
        return {
            "gaps": self.gaps,
            "producers": {str(p): [f, sorted(self._above[p])] for p, f in self._floor.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], max_pending: int = 4096) -> Dedup:
        """The inverse of :meth:`state`."""
        d = cls(max_pending)
        d.gaps = int(state.get("gaps", 0))
        for p, (f, above) in state["producers"].items():
            d._floor[int(p)] = int(f)
            d._above[int(p)] = {int(s) for s in above}
        return d
