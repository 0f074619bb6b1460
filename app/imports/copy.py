"""Exports streamed by Postgres itself: one ``COPY (SELECT …) TO STDOUT`` per export.

The server formats every row (CSV, or one JSON object per line), so the Python process only
forwards bytes: an export runs at close to the speed of a bare ``COPY`` and holds a bounded
number of chunks in memory whatever the table's size. The whole export is one statement, so
it is one consistent snapshot of the table.

CSV cells that a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) get a leading apostrophe (OWASP's "CSV injection"
advice); a cell that already starts with apostrophes before such a character gets one more,
so :func:`unescape_cell` (used by the CSV import) gives back exactly what was stored and an
export imports back unchanged. NDJSON is never altered.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import text

from app.db.session import SessionFactory

Formulas = Literal["escape", "keep"]
CHUNK_BYTES = 256 * 1024
_QUEUED_CHUNKS = 16

# A cell a spreadsheet evaluates, after any apostrophes already escaping it.
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def escape_cell(value: str) -> str:
    """``value`` as the CSV export writes it with formulas escaped."""
    return "'" + value if _FORMULA.match(value) else value


def unescape_cell(value: str) -> str:
    """The inverse of :func:`escape_cell` for a CSV cell being imported."""
    return value[1:] if value[:1] == "'" and _FORMULA.match(value, 1) else value


def _escaped(column: str) -> str:
    """SQL giving a text column's value as :func:`escape_cell` would. The common case (a
    first character that is none of the six, nor an apostrophe) is decided on its code point,
    without a regular expression: the escaping costs an export little."""
    return (
        f"CASE WHEN ascii({column}) IN (61, 43, 45, 64, 9, 13) "  # = + - @ tab CR
        f"OR (ascii({column}) = 39 AND {column} ~ '^''+[-=+@\\t\\r]') "
        f"THEN '''' || {column} ELSE {column} END"
    )


@dataclass(frozen=True)
class _Column:
    name: str
    sql: str
    kind: Literal["text", "bool", "list", "instant", "int", "other"] = "other"

    def csv(self, formulas: Formulas) -> str:
        if self.kind == "text" and formulas == "escape":
            return f"{_escaped(self.sql)} AS {self.name}"
        if self.kind == "bool":
            return f"CASE WHEN {self.sql} THEN 'true' ELSE 'false' END AS {self.name}"
        if self.kind == "list":
            return f"array_to_string({self.sql}, ';') AS {self.name}"
        return f"{self.sql} AS {self.name}"

    def json(self) -> str:
        if self.kind in ("text", "bool", "list", "int", "instant"):
            return f"{self.sql} AS {self.name}"
        return f"{self.sql}::text AS {self.name}"  # ids and numerics as strings, as the API


_CUSTOMERS = (
    _Column("id", "c.id"),
    _Column("external_ref", "c.external_ref", "text"),
    _Column("name", "c.name", "text"),
    _Column("tier", "c.tier_code", "text"),
    _Column("status", "c.status", "text"),
    _Column("region", "c.region", "text"),
    _Column("language", "c.language", "text"),
    _Column("industry", "c.industry", "text"),
    _Column("annual_value", "c.annual_value"),
    _Column("satisfaction", "c.satisfaction"),
    _Column("manager_id", "c.manager_id"),
    _Column("manager_external_ref", "m.external_ref", "text"),
    _Column("pinned", "c.pinned", "bool"),
    _Column("version", "c.version", "int"),
    _Column("created_at", "c.created_at", "instant"),
    _Column("updated_at", "c.updated_at", "instant"),
)
_MANAGERS = (
    _Column("id", "m.id"),
    _Column("external_ref", "m.external_ref", "text"),
    _Column("name", "m.name", "text"),
    _Column("email", "m.email", "text"),
    _Column("level", "m.level", "int"),
    _Column("capacity", "m.capacity", "int"),
    _Column("status", "m.status", "text"),
    _Column("accepting_new", "m.accepting_new", "bool"),
    _Column("region", "m.region", "text"),
    _Column("languages", "m.languages", "list"),
    _Column("industries", "m.industries", "list"),
    _Column("team", "m.team", "text"),
    _Column("version", "m.version", "int"),
    _Column("created_at", "m.created_at", "instant"),
    _Column("updated_at", "m.updated_at", "instant"),
)
_FROM = {
    "customers": "customers AS c LEFT JOIN managers AS m ON m.id = c.manager_id",
    "managers": "managers AS m",
}
_ORDER = {"customers": "c.id", "managers": "m.id"}


@dataclass(frozen=True)
class ExportFilter:
    """Which rows an export holds (``None``: any)."""

    tier: str | None = None
    status: str | None = None
    manager_id: uuid.UUID | None = None
    team: str | None = None

    def where(self, resource: str) -> tuple[str, list[Any]]:
        """The WHERE clause (or "") and its arguments."""
        owner = "c" if resource == "customers" else "m"
        terms: list[tuple[str, Any]] = []
        if self.tier is not None:
            terms.append(("c.tier_code = $%d", self.tier))
        if self.status is not None:
            terms.append((f"{owner}.status = $%d", self.status))
        if self.manager_id is not None:
            terms.append(("c.manager_id = $%d", self.manager_id))
        if self.team is not None:
            terms.append(("m.team = $%d", self.team))
        if not terms:
            return "", []
        clause = " AND ".join(sql % (i + 1) for i, (sql, _) in enumerate(terms))
        return f" WHERE {clause}", [value for _, value in terms]


def export_query(
    resource: str, fmt: Literal["csv", "ndjson"], where: ExportFilter, formulas: Formulas
) -> tuple[str, list[Any], dict[str, Any]]:
    """(the COPY's query, its arguments, the COPY options)."""
    columns = _CUSTOMERS if resource == "customers" else _MANAGERS
    clause, args = where.where(resource)
    tail = f" FROM {_FROM[resource]}{clause} ORDER BY {_ORDER[resource]}"
    if fmt == "csv":
        select = "SELECT " + ", ".join(c.csv(formulas) for c in columns) + tail
        return select, args, {"format": "csv", "header": True}
    inner = "SELECT " + ", ".join(c.json() for c in columns) + tail
    # JSON never holds a raw control character, so CSV quoting with \x01 as the quote and
    # \x02 as the delimiter never triggers: each line is the object's text, as is.
    return (
        f"SELECT row_to_json(r) FROM ({inner}) AS r",
        args,
        {"format": "csv", "quote": "\x01", "delimiter": "\x02"},
    )


async def export_stream(
    factory: SessionFactory,
    *,
    resource: str,
    fmt: Literal["csv", "ndjson"],
    where: ExportFilter | None = None,
    formulas: Formulas = "escape",
) -> AsyncIterator[bytes]:
    """The resource's rows, ordered by id, as CSV (with a header row) or NDJSON chunks of
    about ``CHUNK_BYTES``. It opens its own session: the response is streamed after the
    request's session closed."""
    query, args, options = export_query(resource, fmt, where or ExportFilter(), formulas)
    async with factory() as session:
        # instants in UTC (CSV: "2026-12-01 09:30:00.123456+00", NDJSON: ISO 8601 with "T");
        # room to sort the rows by id in memory
        await session.execute(_SETTINGS)
        connection = await session.connection()
        raw: Any = (await connection.get_raw_connection()).driver_connection
        finished = False
        try:
            async for chunk in _copy_out(raw, query, args, options):
                yield chunk
            finished = True
        finally:
            if not finished:
                # A COPY cut short (a client gone) leaves the connection mid-protocol: it is
                # closed instead of going back to the pool.
                await connection.invalidate()
        await session.rollback()


# The COPY is one statement that lasts as long as the client takes to download the file, so the
# connection's statement timeout (a guard for requests) would cut a slow download mid-stream,
# after the 200: an export has none.
_SETTINGS = text(
    "SELECT set_config('TimeZone', 'UTC', true), set_config('work_mem', '64MB', true),"
    " set_config('statement_timeout', '0', true)"
)
_DONE = object()


async def _copy_out(
    raw: Any, query: str, args: list[Any], options: dict[str, Any]
) -> AsyncIterator[bytes]:
    """``COPY (query) TO STDOUT`` as an async iterator, with back-pressure: the COPY waits
    while ``_QUEUED_CHUNKS`` chunks wait to be sent. A consumer that stops early (a client
    gone) cancels the COPY."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=_QUEUED_CHUNKS)
    failure: list[BaseException] = []

    async def sink(data: bytes) -> None:
        await queue.put(data)

    async def run() -> None:
        try:
            await raw.copy_from_query(query, *args, output=sink, **options)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the consumer, which raises it
            failure.append(exc)
        await queue.put(_DONE)

    task = asyncio.create_task(run())
    try:
        pending = bytearray()
        while (item := await queue.get()) is not _DONE:
            pending += item
            if len(pending) >= CHUNK_BYTES:
                yield bytes(pending)
                pending.clear()
        if failure:
            raise failure[0]
        if pending:
            yield bytes(pending)
    finally:
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
