"""Load many customers straight into the engine's numpy columns with a binary COPY.

At a million customers, Python objects per row cost seconds and gigabytes; a binary COPY of
fixed-width columns parses with one numpy ``frombuffer`` (about 100 bytes a row, transient).
Text attributes travel as small integer codes into dictionaries read first.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import engine
from app.engine import NO_TIME

_HEADER = 19  # PGCOPY signature (11) + flags (4) + header extension length (4)

# Big-endian, one int16 field count per row, then (int32 length, value) per field.
_ROW = np.dtype(
    [
        ("nfields", ">i2"),
        ("l_id", ">i4"),
        ("id", "S16"),
        ("l_tier", ">i4"),
        ("tier", ">i2"),
        ("l_region", ">i4"),
        ("region", ">i4"),
        ("l_language", ">i4"),
        ("language", ">i4"),
        ("l_industry", ">i4"),
        ("industry", ">i4"),
        ("l_pinned", ">i4"),
        ("pinned", "?"),
        ("l_owner", ">i4"),
        ("owner", ">i4"),
        ("l_moved", ">i4"),
        ("moved", ">i8"),
        ("l_value", ">i4"),
        ("value", ">f8"),
        ("l_satisfaction", ">i4"),
        ("satisfaction", ">f8"),
    ]
)

# Every column is non-null and fixed width, so every row has the same layout.
_COPY = f"""
    SELECT c.id,
           (t.idx - 1)::int2,
           COALESCE(array_position($1::text[], c.region) - 1, -1)::int4,
           COALESCE(array_position($2::text[], c.language) - 1, -1)::int4,
           COALESCE(array_position($3::text[], c.industry) - 1, -1)::int4,
           c.pinned,
           COALESCE(o.idx - 1, -1)::int4,
           COALESCE(floor(extract(epoch FROM a.started_at))::int8, {int(NO_TIME)}),
           COALESCE(c.annual_value::float8, 'NaN'),
           COALESCE(c.satisfaction::float8, 'NaN')
      FROM customers AS c
      JOIN unnest($4::text[]) WITH ORDINALITY AS t(code, idx) ON t.code = c.tier_code
      LEFT JOIN unnest($5::uuid[]) WITH ORDINALITY AS o(id, idx) ON o.id = c.manager_id
      LEFT JOIN assignments AS a ON a.customer_id = c.id AND a.ended_at IS NULL
     WHERE c.status = 'active' AND c.manager_id = ANY($5::uuid[])
"""

_DICTIONARY = "SELECT DISTINCT {column} FROM customers WHERE {column} IS NOT NULL ORDER BY 1"


async def load_owned_customer_columns(
    session: AsyncSession, *, tiers: Sequence[engine.Tier], managers: Sequence[engine.Manager]
) -> engine.CustomerColumns:
    """Every active customer owned by one of ``managers``, as engine columns.

    ``owner`` codes are indices into ``managers``. Former owners are not loaded (the
    continuity preference needs them only when placing, not when rebalancing).
    """
    raw = await _raw_connection(session)
    dictionaries = {}
    for column in ("region", "language", "industry"):
        rows = (await session.execute(text(_DICTIONARY.format(column=column)))).scalars().all()
        dictionaries[column] = list(rows)
    tier_codes = [t.code for t in tiers]
    manager_ids = [m.id for m in managers]
    buffer = io.BytesIO()
    await raw.copy_from_query(
        _COPY,
        dictionaries["region"],
        dictionaries["language"],
        dictionaries["industry"],
        tier_codes,
        manager_ids,
        output=buffer,
        format="binary",
    )
    data = buffer.getbuffer()
    count = (len(data) - _HEADER - 2) // _ROW.itemsize
    rows = np.frombuffer(data, dtype=_ROW, count=count, offset=_HEADER)
    columns = engine.CustomerColumns(
        ids=rows["id"].copy(),
        tier=rows["tier"].astype(np.int16),
        tier_codes=tuple(tier_codes),
        region=rows["region"].astype(np.int32),
        regions=tuple(dictionaries["region"]),
        language=rows["language"].astype(np.int32),
        languages=tuple(dictionaries["language"]),
        industry=rows["industry"].astype(np.int32),
        industries=tuple(dictionaries["industry"]),
        annual_value=rows["value"].astype(np.float64),
        satisfaction=rows["satisfaction"].astype(np.float64),
        pinned=rows["pinned"].copy(),
        owner=rows["owner"].astype(np.int32),
        owner_ids=tuple(manager_ids),
        last_moved_at=rows["moved"].astype(np.int64),
    )
    del rows, data
    buffer.close()
    return columns


async def _raw_connection(session: AsyncSession) -> object:
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


def column_ids_to_uuids(ids: np.ndarray) -> list[uuid.UUID]:
    """UUIDs of an S16 id column."""
    return [uuid.UUID(bytes=bytes(b).ljust(16, b"\0")) for b in ids]
