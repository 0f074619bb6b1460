"""CustomerColumns: many customers as numpy columns, for portfolios of a million and more.

No per-customer Python object lives on this path: about 45 bytes per customer with every
column present (16 id + 2 tier + 3×4 region/language/industry + 2×8 money/satisfaction + 1 pinned
+ 4 owner + 8 last move). Former owners are sparse (a mapping from row to owners).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import numpy as np

from app.engine.facts import Customer, EngineError, FormerOwner

NO_TIME = np.iinfo(np.int64).min
"""`last_moved_at` value meaning "never moved"."""


def uuid_at(ids: np.ndarray, i: int) -> UUID:
    """The UUID in row `i` of an S16 id column (numpy strips trailing NUL bytes on access)."""
    return UUID(bytes=bytes(ids[i]).ljust(16, b"\0"))


def uuids_to_s16(values: Sequence[UUID]) -> np.ndarray:
    """Pack UUIDs into an S16 column."""
    return np.frombuffer(b"".join(u.bytes for u in values), dtype="S16").copy()


def id_order(ids: np.ndarray) -> np.ndarray | None:
    """The rows of an S16 id column in id order (as the bytes compare, as Postgres orders
    UUIDs); None when they are in that order already (one pass, no sort)."""
    if len(ids) < 2:
        return None
    halves = np.ascontiguousarray(ids).view(">u8").reshape(-1, 2)
    high, low = halves[:, 0], halves[:, 1]
    rising = high[1:] > high[:-1]
    if rising.all() or (rising | (high[1:] == high[:-1]) & (low[1:] > low[:-1])).all():
        return None
    order = np.argsort(high)  # not stable, 4× faster: equal halves are sorted again
    ordered = high[order]
    if (ordered[1:] == ordered[:-1]).any():  # two ids share their first 8 bytes
        order = np.lexsort((low, high))
    return order


def to_epoch(value: datetime | None) -> int:
    """Epoch seconds of an aware (or UTC-naive) datetime; NO_TIME for None."""
    if value is None:
        return int(NO_TIME)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def from_epoch(value: int) -> datetime | None:
    """Inverse of to_epoch."""
    return None if value == NO_TIME else datetime.fromtimestamp(int(value), tz=UTC)


_ABSENT = np.empty(0, dtype=object)


def _absent() -> np.ndarray:
    """Default of a column left out: __post_init__ replaces it with the column's "none" value."""
    return _ABSENT


def _codes(values: Sequence[str | None]) -> tuple[np.ndarray, tuple[str, ...]]:
    cats = sorted({v for v in values if v is not None})
    index = {c: i for i, c in enumerate(cats)}
    codes = np.fromiter((index.get(v, -1) if v is not None else -1 for v in values), np.int32)
    return codes, tuple(cats)


@dataclass(frozen=True, eq=False)
class CustomerColumns:
    """Columnar customers. Every array has one row per customer.

    - `ids`: S16, the 16 raw bytes of each UUID (Postgres binary COPY gives exactly these).
    - `tier`: int16 codes into `tier_codes` (the codes of the given `Tier`s, any order).
    - `region`, `language`, `industry`: int32 codes into `regions`, `languages`,
      `industries`; -1 means None. A column left out means "None for everyone".
    - `annual_value`, `satisfaction`: float64, NaN means None.
    - `pinned`: bool.
    - `owner`: int32 codes into `owner_ids` (the current owner), -1 = in the pool. Passing the
      manager list's ids as `owner_ids` makes the codes plain manager indices.
    - `last_moved_at`: int64 epoch seconds (UTC), `NO_TIME` = never moved.
    - `former_owners`: sparse mapping row -> former owners; rows not present have none.
    """

    ids: np.ndarray
    tier: np.ndarray
    tier_codes: tuple[str, ...]
    region: np.ndarray = field(default_factory=_absent)
    regions: tuple[str, ...] = ()
    language: np.ndarray = field(default_factory=_absent)
    languages: tuple[str, ...] = ()
    industry: np.ndarray = field(default_factory=_absent)
    industries: tuple[str, ...] = ()
    annual_value: np.ndarray = field(default_factory=_absent)
    satisfaction: np.ndarray = field(default_factory=_absent)
    pinned: np.ndarray = field(default_factory=_absent)
    owner: np.ndarray = field(default_factory=_absent)
    owner_ids: tuple[UUID, ...] = ()
    last_moved_at: np.ndarray = field(default_factory=_absent)
    former_owners: Mapping[int, tuple[FormerOwner, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids)
        if ids.dtype != np.dtype("S16") or ids.ndim != 1:
            raise EngineError("CustomerColumns.ids must be a 1-d S16 array of UUID bytes")
        n = len(ids)
        specs: dict[str, tuple[Any, Any]] = {
            "tier": (np.int16, None),
            "region": (np.int32, -1),
            "language": (np.int32, -1),
            "industry": (np.int32, -1),
            "annual_value": (np.float64, np.nan),
            "satisfaction": (np.float64, np.nan),
            "pinned": (np.bool_, False),
            "owner": (np.int32, -1),
            "last_moved_at": (np.int64, NO_TIME),
        }
        for name, (dtype, fill) in specs.items():
            value = getattr(self, name)
            if value is None or value is _ABSENT:
                value = np.full(n, fill, dtype=dtype)
            else:
                value = np.asarray(value)
                if value.shape != (n,):
                    raise EngineError(f"CustomerColumns.{name} must have one row per customer")
                if value.dtype != dtype:
                    value = value.astype(dtype)
            object.__setattr__(self, name, value)
        for name, cats in (
            ("tier", self.tier_codes),
            ("region", self.regions),
            ("language", self.languages),
            ("industry", self.industries),
            ("owner", self.owner_ids),
        ):
            codes = getattr(self, name)
            if n and (codes.max() >= len(cats) or codes.min() < (0 if name == "tier" else -1)):
                raise EngineError(f"CustomerColumns.{name} has a code outside its categories")
        object.__setattr__(self, "tier_codes", tuple(self.tier_codes))
        object.__setattr__(self, "owner_ids", tuple(self.owner_ids))
        for row in self.former_owners:
            if not 0 <= row < n:
                raise EngineError(f"CustomerColumns.former_owners: row {row} out of range")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_customers(cls, customers: Sequence[Customer]) -> CustomerColumns:
        """Build the columnar form of a sequence of customers (rows keep the input order)."""
        tier, tier_codes = _codes([c.tier for c in customers])
        region, regions = _codes([c.region for c in customers])
        language, languages = _codes([c.language for c in customers])
        industry, industries = _codes([c.industry for c in customers])
        owner_ids = tuple(sorted({c.manager_id for c in customers if c.manager_id is not None}))
        owner_index = {m: i for i, m in enumerate(owner_ids)}
        nan = float("nan")
        return cls(
            ids=uuids_to_s16([c.id for c in customers]) if customers else np.empty(0, "S16"),
            tier=tier.astype(np.int16),
            tier_codes=tier_codes,
            region=region,
            regions=regions,
            language=language,
            languages=languages,
            industry=industry,
            industries=industries,
            annual_value=np.array(
                [nan if c.annual_value is None else c.annual_value for c in customers], np.float64
            ),
            satisfaction=np.array(
                [nan if c.satisfaction is None else c.satisfaction for c in customers], np.float64
            ),
            pinned=np.array([c.pinned for c in customers], np.bool_),
            owner=np.array(
                [-1 if c.manager_id is None else owner_index[c.manager_id] for c in customers],
                np.int32,
            ),
            owner_ids=owner_ids,
            last_moved_at=np.array([to_epoch(c.last_moved_at) for c in customers], np.int64),
            former_owners={i: c.former_owners for i, c in enumerate(customers) if c.former_owners},
        )

    def take(self, rows: np.ndarray) -> CustomerColumns:
        """The given rows, in that order, as new columns (categories kept)."""
        rows = np.asarray(rows, np.int64)
        position = {int(r): i for i, r in enumerate(rows)} if self.former_owners else {}
        return CustomerColumns(
            ids=self.ids[rows],
            tier=self.tier[rows],
            tier_codes=self.tier_codes,
            region=self.region[rows],
            regions=self.regions,
            language=self.language[rows],
            languages=self.languages,
            industry=self.industry[rows],
            industries=self.industries,
            annual_value=self.annual_value[rows],
            satisfaction=self.satisfaction[rows],
            pinned=self.pinned[rows],
            owner=self.owner[rows],
            owner_ids=self.owner_ids,
            last_moved_at=self.last_moved_at[rows],
            former_owners={
                position[r]: owners for r, owners in self.former_owners.items() if r in position
            },
        )

    def by_id(self) -> CustomerColumns:
        """The same customers in id order: whatever order the rows were read in, the engine
        (which breaks ties by row) and digests over the columns see one book."""
        order = id_order(self.ids)
        return self if order is None else self.take(order)

    def customer_id(self, i: int) -> UUID:
        """The id of row `i`."""
        return uuid_at(self.ids, i)

    def owner_id(self, i: int) -> UUID | None:
        """The current owner of row `i`, None when in the pool."""
        code = int(self.owner[i])
        return None if code < 0 else self.owner_ids[code]

    def customer(self, i: int) -> Customer:
        """Row `i` as a Customer (for explanations; not for bulk work)."""

        def cat(codes: np.ndarray, cats: tuple[str, ...]) -> str | None:
            code = int(codes[i])
            return None if code < 0 else cats[code]

        def num(values: np.ndarray) -> float | None:
            value = float(values[i])
            return None if np.isnan(value) else value

        return Customer(
            id=self.customer_id(i),
            tier=self.tier_codes[int(self.tier[i])],
            region=cat(self.region, self.regions),
            language=cat(self.language, self.languages),
            industry=cat(self.industry, self.industries),
            annual_value=num(self.annual_value),
            satisfaction=num(self.satisfaction),
            pinned=bool(self.pinned[i]),
            manager_id=self.owner_id(i),
            former_owners=tuple(self.former_owners.get(i, ())),
            last_moved_at=from_epoch(int(self.last_moved_at[i])),
        )

    def domain(self, attr: str) -> tuple[np.ndarray, list[Any]]:
        """Codes per row and the value of each code, for one customer attribute.

        Rules are evaluated once per distinct value, then broadcast by code.
        """
        if attr == "tier":
            return self.tier.astype(np.int32), list(self.tier_codes)
        if attr in ("region", "language", "industry"):
            cats = {"region": self.regions, "language": self.languages}.get(attr, self.industries)
            return getattr(self, attr) + 1, [None, *cats]
        if attr == "manager_id":
            return self.owner + 1, [None, *self.owner_ids]
        if attr == "pinned":
            return self.pinned.astype(np.int32), [False, True]
        if attr in ("annual_value", "satisfaction"):
            values, codes = np.unique(getattr(self, attr), return_inverse=True)
            return codes, [None if np.isnan(v) else float(v) for v in values]
        if attr == "last_moved_at":
            values, codes = np.unique(self.last_moved_at, return_inverse=True)
            return codes, [from_epoch(int(v)) for v in values]
        if attr == "id":
            values, codes = np.unique(self.ids, return_inverse=True)
            return codes, [UUID(bytes=bytes(v).ljust(16, b"\0")) for v in values]
        raise EngineError(f"unknown customer attribute {attr!r}")
