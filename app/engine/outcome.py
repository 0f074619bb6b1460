"""What the strategies fill in, per customer, in engine form: where each goes (a manager's engine
index, ``POOL`` or ``KEEP``), its score, the reason code and whether capacity was forced."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

POOL = -1
"""`to` value: the customer goes to (or stays in) the pool."""
KEEP = -3
"""`to` value: the customer stays with a current owner that is not among the given managers."""


@dataclass(eq=False)
class Outcome:
    """Per-customer results in engine form (filled by the strategies)."""

    to: np.ndarray  # int32: engine manager index, POOL or KEEP
    score: np.ndarray  # float64
    reason: np.ndarray  # int16 codes into `reasons`
    forced: np.ndarray  # bool: capacity overridden
    reasons: list[tuple[str, ...]] = field(default_factory=list)
    _codes: dict[tuple[str, ...], int] = field(default_factory=dict)

    @classmethod
    def empty(cls, n: int) -> Outcome:
        """An outcome with nobody decided yet."""
        return cls(
            to=np.full(n, POOL, np.int32),
            score=np.zeros(n, np.float64),
            reason=np.full(n, -1, np.int16),
            forced=np.zeros(n, bool),
        )

    def code(self, reasons: tuple[str, ...]) -> int:
        """The code of a reason tuple (interned)."""
        if reasons not in self._codes:
            self._codes[reasons] = len(self.reasons)
            self.reasons.append(reasons)
        return self._codes[reasons]

    def set(
        self,
        rows: np.ndarray | int,
        to: np.ndarray | int,
        reasons: tuple[str, ...],
        score: np.ndarray | float = 0.0,
    ) -> None:
        """Record decisions for some rows."""
        self.to[rows] = to
        self.reason[rows] = self.code(reasons)
        self.score[rows] = score

    def with_reasons(self, rows: np.ndarray, choices: Collection[tuple[str, ...]]) -> np.ndarray:
        """The rows whose reasons are one of ``choices``."""
        codes = [self._codes[r] for r in choices if r in self._codes]
        return rows[np.isin(self.reason[rows], codes)]
