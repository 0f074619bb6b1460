"""Load many customers straight into the engine's numpy columns with a binary COPY.

At a million customers, Python objects per row cost seconds and gigabytes; a binary COPY of
fixed-width columns parses with one numpy ``frombuffer`` (about 90 bytes a row, transient).
Tier, region, language and industry travel as one code into the few distinct combinations,
a list kept from an earlier read and checked by the COPY itself (one pass over the table, not
two); owners travel as raw UUID bytes and are matched to the manager list in numpy.

The server does as little per row as it can: every expression it evaluates for a million
rows costs about as much as sending a column. So the owners and tiers are not filtered in
the query (a hashed ``= ANY`` over 10 000 manager ids cost a third of the whole COPY), and
the tier is one more key of the combinations' join rather than an ``array_position`` of its
own: a row whose owner is not among the managers, or whose tier is not among the tiers, is
dropped while it is parsed. Only when the managers asked for are a small part of all managers is
the filter sent with the query, so a team's book does not move the whole company's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import operator
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import anyio.to_thread
import asyncpg
import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from app import engine
from app.assignments.loading import collection_paused
from app.db.session import driver_connection
from app.engine import NO_TIME
from app.errors import Conflict

_HEADER = 19  # PGCOPY signature (11) + flags (4) + header extension length (4)

# Big-endian, one int16 field count per row, then (int32 length, value) per field.
_ROW = np.dtype(
    [
        ("nfields", ">i2"),
        ("l_id", ">i4"),
        ("id", "V16"),
        ("l_attrs", ">i4"),
        ("attrs", ">i4"),  # the combination's code times two, plus one if pinned
        ("l_owner", ">i4"),
        ("owner", "V16"),
        ("l_since", ">i4"),
        ("since", ">i8"),
        ("l_value", ">i4"),
        ("value", ">f8"),
        ("l_satisfaction", ">i4"),
        ("satisfaction", ">f8"),
    ]
)

# The attribute combinations (tier, region, language, industry; NULL as '') of the last read,
# kept for the life of the process. A load sends them with its COPY and codes each row by a
# LEFT JOIN, so the book is read in one pass; a row whose combination is not in the list (one
# created since) comes back coded -1, and the load reads the combinations again and repeats
# its COPY. Combinations no longer in use only lengthen the list: the columns keep the ones
# their rows use, so a load gives the same columns whatever the list held.
_known_combinations: list[tuple[str, str, str, str]] | None = None

# NULL text attributes travel as '' (never a real value: the API refuses empty strings).
_COMBINATIONS = """
    SELECT DISTINCT tier_code, COALESCE(region, ''), COALESCE(language, ''),
           COALESCE(industry, '')
      FROM customers WHERE status = 'active' AND manager_id IS NOT NULL
"""

# Every column is non-null and fixed width, so every row has the same layout. Instants travel
# as Postgres' own binary timestamps (microseconds since 2000-01-01; '-infinity' is the int64
# minimum, the engine's NO_TIME): converting them to epoch seconds in SQL (a numeric) cost
# more than the rest of the COPY. Only the small list of combinations is joined (a hash join
# on it; joins to tiers or managers made the planner choose nested loops or a parallel plan
# that cost more than the scan). Server time at a million rows (EXPLAIN ANALYZE, medians, a
# shared 2-core machine): the four-key join 0.64 s, the tier by ``array_position`` and a
# three-key join 0.76 s; region, language and industry each by ``array_position`` or by a
# CASE over its list cost more than either, the scan with no coding at all 0.45 s. The pinned
# flag rides in the combination code's lowest bit ($5: each combination's code times two, so no
# bigint ordinality is converted per row): a column fewer to send costs the server less than
# the addition (at a million rows, 0.43 s of server time against 0.48 s, COPY to /dev/null).
_COPY = """
    SELECT c.id,
           COALESCE(d.code, -2) + c.pinned::int4,
           c.manager_id,
           COALESCE(c.owner_since, '-infinity'),
           COALESCE(c.annual_value::float8, 'NaN'),
           COALESCE(c.satisfaction::float8, 'NaN')
      FROM customers AS c
      LEFT JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[])
           AS d(t, r, l, i, code)
        ON d.t = c.tier_code AND d.r = COALESCE(c.region, '')
       AND d.l = COALESCE(c.language, '') AND d.i = COALESCE(c.industry, '')
     WHERE c.status = 'active' AND c.manager_id IS NOT NULL
"""
# The same, for a few managers' customers (``_SERVER_FILTER``).
_COPY_OF_MANAGERS = _COPY.replace("c.manager_id IS NOT NULL", "c.manager_id = ANY($6::uuid[])")

# Below this share of the managers who can own customers, the owners are filtered by the query
# (a hashed lookup per row on the server) rather than while parsing (every owned customer
# sent); departed managers, who accumulate, own nobody and do not count.
_SERVER_FILTER = 0.5
_MANAGER_COUNT = """
    SELECT count(*), current_setting('parallel_tuple_cost') FROM managers
     WHERE status <> 'departed'
"""

# The planner charges each row a parallel worker hands to the leader (``parallel_tuple_cost``,
# 0.1 by default) and so scans the whole book alone, though the leader's part of the COPY is
# sending rows and the scan and the combinations' join are the part the workers can share:
# with the charge lifted for the load (and put back after it), a book of a million rows is
# scanned in parallel where the server allows it (``max_parallel_workers_per_gather``), and
# its COPY took 0.85 s instead of 1.17 s on a shared 2-core machine (100k: 0.063 s, 0.071 s).
# Small tables stay serial (``min_parallel_table_scan_size``). The rows come in a different
# order from run to run: the load puts them in id order whatever plan the server chose.
_PARALLEL = "SELECT set_config('parallel_tuple_cost', $1, true)"

# Combinations created between a read of them and the COPY that uses it are rare (a new
# region or industry, a tier with attributes none of its customers had); a book changing
# that fast under every attempt is refused.
_ATTEMPTS = 4


def _dictionary(values: list[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """Categories (sorted, '' meaning None dropped) and each value's code (-1 for None)."""
    categories = tuple(sorted({v for v in values if v}))
    index = {c: i for i, c in enumerate(categories)}
    return categories, np.array([index.get(v, -1) for v in values], dtype=np.int32)


async def load_owned_customer_columns(
    session: AsyncSession, *, tiers: Sequence[engine.Tier], managers: Sequence[engine.Manager]
) -> engine.CustomerColumns:
    """Every active customer owned by one of ``managers``, as engine columns in id order.

    ``owner`` codes are indices into ``managers``; ``last_moved_at`` is when the current owner
    got the customer. Former owners are not loaded (rebalancing does not read them).
    """
    raw = await driver_connection(session)
    manager_ids = [m.id for m in managers]
    managers_in_office, prior = await raw.fetchrow(_MANAGER_COUNT)
    query, owner_args = _COPY, []
    if len(manager_ids) < _SERVER_FILTER * managers_in_office:
        query, owner_args = _COPY_OF_MANAGERS, [manager_ids]
    await raw.execute(_PARALLEL, "0")
    try:
        columns = await _read_book(raw, query, owner_args, [t.code for t in tiers], manager_ids)
    except asyncpg.PostgresError:
        raise  # the transaction has failed: the setting ends with it
    except Exception:
        # Parsing failed on this side: the transaction goes on, and so would the setting.
        await raw.execute(_PARALLEL, prior)
        raise
    await raw.execute(_PARALLEL, prior)
    if columns is None:
        raise Conflict("the customers' attributes kept changing while the book was read; retry")
    return columns


async def _read_book(
    raw: Any,
    query: str,
    owner_args: list[list[uuid.UUID]],
    tier_codes: list[str],
    manager_ids: list[uuid.UUID],
) -> engine.CustomerColumns | None:
    """The COPY parsed into columns, with the combinations read again (and the COPY run
    again) when a row's is not among them; None if that kept happening."""
    global _known_combinations
    owners = _OwnerIndex(manager_ids)
    combos = _known_combinations
    for _ in range(_ATTEMPTS):
        if combos is None:
            combos = [(r[0], r[1], r[2], r[3]) for r in await raw.fetch(_COMBINATIONS)]
            _known_combinations = combos
        stream = _Stream(owners, _tiers_of(combos, tier_codes))
        try:
            await raw.copy_from_query(
                query,
                *([c[k] for c in combos] for k in range(4)),
                list(range(0, 2 * len(combos), 2)),
                *owner_args,
                output=stream.receive,
                format="binary",
            )
        except BaseException:
            await stream.abandon()  # the COPY's own error is the one to report
            raise
        parts = await stream.finish()
        # Assembled in a worker thread too: no other request waits it out.
        columns = await anyio.to_thread.run_sync(_assemble, parts, tier_codes, combos, manager_ids)
        if columns is not None:
            return columns
        combos = None  # a combination created since they were read
    return None


# About 85k rows: slices small enough that the last one's parse adds little after the COPY
# ends, large enough that numpy's per-call cost does not show.
_SLICE = 1 << 23


@dataclasses.dataclass(frozen=True, slots=True)
class _Rows:
    """Some rows of the COPY, parsed into native arrays (``attrs``: combination codes)."""

    ids: np.ndarray
    attrs: np.ndarray
    pinned: np.ndarray
    owner: np.ndarray
    since: np.ndarray
    value: np.ndarray
    satisfaction: np.ndarray


class _Stream:
    """A binary COPY parsed slice by slice in worker threads while it streams, so the parse
    of one slice overlaps the transfer of the next and a load costs little more than its
    COPY. Chunks are gathered on the event loop (a file-like output costs asyncpg a thread
    hop per chunk)."""

    def __init__(self, owners: _OwnerIndex, tiers_of: np.ndarray) -> None:
        self._owners = owners
        self._tiers_of = tiers_of
        self._pending = bytearray()
        self._skip = _HEADER
        self._parts: list[asyncio.Future[_Rows]] = []

    async def receive(self, chunk: bytes) -> None:
        self._pending += chunk
        if len(self._pending) - self._skip >= _SLICE:
            self._dispatch(trailer=0)

    async def finish(self) -> list[_Rows]:
        """Every slice parsed, in order (the 2-byte trailer of a complete COPY dropped)."""
        if len(self._pending) >= self._skip + 2:
            self._dispatch(trailer=2)
        return list(await asyncio.gather(*self._parts))

    async def abandon(self) -> None:
        """Wait for the slices in flight after a failed COPY, whatever they come to."""
        await asyncio.gather(*self._parts, return_exceptions=True)

    def _dispatch(self, *, trailer: int) -> None:
        count = (len(self._pending) - self._skip - trailer) // _ROW.itemsize
        if not count:
            return
        end = self._skip + count * _ROW.itemsize
        with memoryview(self._pending) as view:
            data = view[self._skip : end].tobytes()
        del self._pending[:end]
        self._skip = 0
        loop = asyncio.get_running_loop()
        self._parts.append(
            loop.run_in_executor(None, _parse_rows, data, self._owners, self._tiers_of)
        )


# A combination's tier when the tier is not among the tiers loaded (its rows are dropped), and
# the code a row whose combination is unknown gets as its tier (kept, so the miss is seen).
_NO_TIER = -1
_UNKNOWN = -2


def _tiers_of(combos: list[tuple[str, str, str, str]], tier_codes: list[str]) -> np.ndarray:
    """Each combination's tier as an index into ``tier_codes``, then ``_UNKNOWN`` (the tier
    of a row coded -1)."""
    index = {code: i for i, code in enumerate(tier_codes)}
    tiers = [index.get(c[0], _NO_TIER) for c in combos]
    return np.array([*tiers, _UNKNOWN], dtype=np.int16)


def _parse_rows(data: bytes, owners: _OwnerIndex, tiers_of: np.ndarray) -> _Rows:
    rows = np.frombuffer(data, dtype=_ROW)
    owner = owners.codes(rows["owner"])
    coded = rows["attrs"].astype(np.int32)
    pinned = (coded & 1).astype(np.bool_)
    attrs = coded >> 1  # -2 and -1 (unknown, pinned or not) both give -1
    tier = tiers_of[attrs]  # -1 (unknown combination) takes the last: _UNKNOWN
    kept = (owner >= 0) & (tier != _NO_TIER)  # another manager's customer, or tier
    if not kept.all():
        rows, owner, attrs, pinned = rows[kept], owner[kept], attrs[kept], pinned[kept]
    return _Rows(
        ids=rows["id"].copy().view("S16"),
        attrs=attrs,
        pinned=pinned,
        owner=owner,
        since=_epoch_seconds(rows["since"]),
        value=rows["value"].astype(np.float64),
        satisfaction=rows["satisfaction"].astype(np.float64),
    )


# The columns of the parsed slices that go into the engine's columns (the others follow from
# the combination codes), with the type of each when no row was read.
_COLUMNS = {
    "ids": "S16",
    "attrs": "int32",
    "pinned": "bool",
    "owner": "int32",
    "since": "int64",
    "value": "float64",
    "satisfaction": "float64",
}


def _assemble(
    parts: list[_Rows],
    tier_codes: list[str],
    combos: list[tuple[str, str, str, str]],
    manager_ids: list[uuid.UUID],
) -> engine.CustomerColumns | None:
    """The parsed slices as engine columns in id order (``combos``: the attribute
    combinations the rows' codes index); None if a row's combination is not among them.

    In id order whatever plan the server chose (a parallel scan hands rows over in no fixed
    order): the engine breaks ties by row, and a plan's token digests the columns, so the same
    book must read the same. Only the columns read are put in order (tier, region, language and
    industry follow from the combination codes after), once. Putting each column in order in
    a thread of its own measured slower on a busy 2-core machine (0.33 s against 0.19 s at a
    million rows, medians): one thread.
    """

    def joined(name: str) -> np.ndarray:
        arrays = [getattr(p, name) for p in parts]
        if len(arrays) == 1:
            one: np.ndarray = arrays[0]
            return one
        if not arrays:
            return np.zeros(0, dtype=_COLUMNS[name])
        return np.concatenate(arrays)

    attrs = joined("attrs")
    if len(attrs) and attrs.min() < 0:
        return None
    ids = joined("ids")
    order = engine.id_order(ids)
    columns = {"ids": ids, "attrs": attrs}
    for name in _COLUMNS:
        column = columns.get(name)
        if column is None:
            column = joined(name)
        columns[name] = column if order is None else np.take(column, order)
    return _columns(columns, tier_codes, combos, manager_ids)


def _columns(
    columns: dict[str, np.ndarray],
    tier_codes: list[str],
    combos: list[tuple[str, str, str, str]],
    manager_ids: list[uuid.UUID],
) -> engine.CustomerColumns:
    """Engine columns from the joined, ordered columns of the slices: the combination codes
    become tier, region, language and industry codes."""
    attrs = columns["attrs"]
    # Only the combinations in use become categories: the same columns as a fresh read.
    used = np.flatnonzero(np.bincount(attrs, minlength=len(combos)))
    present = [combos[i] for i in used]
    regions, region_of = _dictionary([c[1] for c in present])
    languages, language_of = _dictionary([c[2] for c in present])
    industries, industry_of = _dictionary([c[3] for c in present])
    compact = np.full(len(combos), -1, dtype=np.int32)
    compact[used] = np.arange(len(used), dtype=np.int32)
    tier_of = _tiers_of(present, tier_codes)[:-1]  # every row's tier is among them (parsed)
    attrs = compact[attrs]
    return engine.CustomerColumns(
        ids=columns["ids"],
        tier=tier_of[attrs],
        tier_codes=tuple(tier_codes),
        region=region_of[attrs],
        regions=regions,
        language=language_of[attrs],
        languages=languages,
        industry=industry_of[attrs],
        industries=industries,
        annual_value=columns["value"],
        satisfaction=columns["satisfaction"],
        pinned=columns["pinned"],
        owner=columns["owner"],
        owner_ids=tuple(manager_ids),
        last_moved_at=columns["since"],
    )


_POSTGRES_EPOCH = 946_684_800  # 2000-01-01T00:00:00Z in Unix seconds


def _epoch_seconds(micros: np.ndarray) -> np.ndarray:
    """Postgres binary timestamps as whole Unix seconds (floored), NO_TIME kept."""
    since = micros.astype(np.int64)
    missing = since == NO_TIME
    seconds = since // 1_000_000 + _POSTGRES_EPOCH
    seconds[missing] = NO_TIME
    return seconds


def with_workloads(
    managers: Sequence[engine.Manager],
    customers: engine.CustomerColumns,
    tiers: Sequence[engine.Tier],
) -> list[engine.Manager]:
    """The managers with workloads summed from the loaded book (one numpy pass, no SQL scan)."""
    weight = {t.code: t.weight for t in tiers}
    tier_weight = np.array([weight[c] for c in customers.tier_codes], dtype=np.int64)
    owner, tier = customers.owner, customers.tier
    if len(owner) and owner.min() < 0:
        owned = owner >= 0
        owner, tier = owner[owned], tier[owned]
    # Customers counted per (manager, tier), then weighed: integer counts, no float weights
    # gathered per customer.
    width = len(tier_weight)
    load = np.zeros(len(managers), dtype=np.int64)
    if width:  # no tiers: no customers either
        counts = np.bincount(owner.astype(np.int64) * width + tier, minlength=len(load) * width)
        load = counts.reshape(-1, width) @ tier_weight
    # Built field by field in order (one C-level read of all fields), not with
    # ``dataclasses.replace``: at 10 000 managers that cost 0.14 s, this about a third of it.
    at = _MANAGER_FIELDS.index("workload")
    build: Callable[..., engine.Manager] = engine.Manager  # positional, in field order
    out = []
    with collection_paused():
        for m, w in zip(managers, load.tolist(), strict=True):
            values = _manager_fields(m)
            out.append(build(*values[:at], int(w), *values[at + 1 :]))
    return out


_MANAGER_FIELDS = tuple(f.name for f in dataclasses.fields(engine.Manager))
_manager_fields = operator.attrgetter(*_MANAGER_FIELDS)


# A UUID as its two big-endian halves (a view of the COPY's 16 bytes, nothing copied).
_HALVES = np.dtype([("high", ">u8"), ("low", ">u8")])


class _OwnerIndex:
    """Index of each owner UUID in ``manager_ids``, -1 for an owner not among them.

    Looked up in a direct-address table on the UUIDs' leading bits (about 128 slots per
    manager up to 32k managers, so few managers share one), then verified whole; the rows
    whose slot holds another manager fall back to a sorted search, and if two managers ever
    shared their high half, an exact dictionary lookup takes over. A million owners cost a
    few table reads each instead of a binary search over the managers. The table is built
    once per load and read by every slice.
    """

    def __init__(self, manager_ids: Sequence[uuid.UUID]) -> None:
        self._manager_ids = manager_ids
        raw = b"".join(m.bytes for m in manager_ids)
        halves = np.frombuffer(raw, dtype=_HALVES)
        self._high = halves["high"].astype(np.uint64)
        self._low = halves["low"].astype(np.uint64)
        self._order = np.argsort(self._high, kind="stable")
        self._sorted_high = self._high[self._order]
        self._shared_high = bool(np.any(self._sorted_high[1:] == self._sorted_high[:-1]))
        # At most 2**22 slots (16 MiB): past ~32k managers more of them share a slot and
        # take the sorted search.
        bits = min(22, max(16, len(self._high).bit_length() + 7))
        self._shift = np.uint64(64 - bits)
        self._table = np.full(1 << bits, -1, dtype=np.int32)
        self._table[self._high >> self._shift] = np.arange(len(self._high), dtype=np.int32)

    def codes(self, owners: np.ndarray) -> np.ndarray:
        """The codes of ``owners`` (16-byte UUIDs, possibly a strided field of the COPY)."""
        if not len(owners) or not len(self._high):
            return np.full(len(owners), -1, dtype=np.int32)
        halves = owners.view(_HALVES)
        high = halves["high"].astype(np.uint64)
        low = halves["low"].astype(np.uint64)
        codes = self._table[high >> self._shift]
        found = (codes >= 0) & (self._high[codes] == high) & (self._low[codes] == low)
        if not found.all():
            missed = np.flatnonzero(~found)
            codes[missed] = self._searched(high[missed], low[missed])
        return codes

    def _searched(self, high: np.ndarray, low: np.ndarray) -> np.ndarray:
        """``codes`` by a sorted search on the high half, verified whole."""
        at = np.minimum(np.searchsorted(self._sorted_high, high), len(self._order) - 1)
        codes = self._order[at].astype(np.int32)
        found = (self._high[codes] == high) & (self._low[codes] == low)
        codes[~found] = -1
        if self._shared_high and not found.all():
            index = {m.bytes: i for i, m in enumerate(self._manager_ids)}
            for i in np.flatnonzero(~found):
                key = int(high[i]).to_bytes(8, "big") + int(low[i]).to_bytes(8, "big")
                codes[i] = index.get(key, -1)
        return codes
