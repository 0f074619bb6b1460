"""Customer classes: customers the rules cannot tell apart (same tier, same values read by the
rules, same relations to candidate managers when the rules read those) are interchangeable, so
strategies decide per class and expand to customers at the end."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.engine.problem import Problem


@dataclass(eq=False)
class Classes:
    """Rows grouped by class; within a class rows are in customer-id order."""

    rows: np.ndarray  # customer rows, grouped by class
    starts: np.ndarray  # class c owns rows[starts[c]:starts[c + 1]]
    order: np.ndarray  # processing order: rank, heavier first, then lowest customer id
    rep: np.ndarray  # a representative row (the lowest id) per class
    weight: np.ndarray  # per class
    min_level: np.ndarray  # per class
    ignore_current: bool = False  # rules see no current owner (a rebalance moves customers away)

    def __len__(self) -> int:
        return len(self.rep)

    def members(self, c: int) -> np.ndarray:
        """Rows of class c in customer-id order."""
        return self.rows[self.starts[c] : self.starts[c + 1]]


def _key(columns: list[np.ndarray]) -> np.ndarray:
    """Dense class ids from integer key columns."""
    n = len(columns[0])
    shifted = [c - c.min() for c in columns]
    radix = [int(c.max()) + 1 for c in shifted]
    span = 1
    for r in radix:
        span *= r
    if span >= 2**62:
        _, inverse = np.unique(np.stack(shifted, axis=1), axis=0, return_inverse=True)
        return inverse.reshape(-1)
    key = np.zeros(n, np.int64)
    for column, r in zip(shifted, radix, strict=True):
        key = key * r + column
    if span <= 4 * n + 1024:
        present = np.bincount(key, minlength=span) > 0
        dense = np.cumsum(present) - 1
        return dense[key]
    _, inverse = np.unique(key, return_inverse=True)
    return inverse


def build_classes(problem: Problem, rows: np.ndarray, *, ignore_current: bool = False) -> Classes:
    """Group `rows` (given in customer-id order) into classes.

    With `ignore_current`, rules are evaluated as if the customers had no current owner (for
    customers leaving their owner), so the owner does not split classes.
    """
    if len(rows) == 0:
        empty = np.zeros(0, np.int64)
        return Classes(empty, np.zeros(1, np.int64), empty, empty, empty, empty, ignore_current)
    cols = problem.cols
    columns = [cols.tier[rows].astype(np.int64)]
    columns += problem.evaluator.class_key_columns(rows)
    if problem.evaluator.reads_current and not ignore_current:
        columns.append(problem.owner[rows].astype(np.int64))
    if problem.evaluator.reads_former and cols.former_owners:
        signature: dict[tuple[int, ...], int] = {(): 0}
        former = np.zeros(len(cols), np.int64)
        for row in cols.former_owners:
            former[row] = signature.setdefault(problem.former(row), len(signature))
        columns.append(former[rows])
    class_of = _key(columns)
    count = int(class_of.max()) + 1
    dtype = np.int16 if count < 2**15 else np.int64  # small ints sort by radix
    grouping = np.argsort(class_of.astype(dtype), kind="stable")
    grouped = rows[grouping]
    sizes = np.bincount(class_of, minlength=count)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    rep = grouped[starts[:-1]]
    first_position = grouping[starts[:-1]]
    weight = problem.weight[rep]
    order = np.lexsort((first_position, -weight, problem.rank[rep]))
    return Classes(grouped, starts, order, rep, weight, problem.min_level[rep], ignore_current)


def class_eligibility(problem: Problem, classes: Classes, c: int) -> tuple[np.ndarray, np.ndarray]:
    """(eligible under every rule except capacity, preference score) over managers."""
    rep = int(classes.rep[c])
    current, former = problem.relations(rep)
    if classes.ignore_current:
        current = -1
    ok, pref = problem.evaluator.row(rep, current, former)
    ok &= problem.receivable & (problem.level >= classes.min_level[c])
    ok &= problem.tier_room_of(rep) > 0
    return ok, pref
