"""``baton import`` and ``baton export``: the bulk endpoints' use cases run against the
database directly (one transaction for an import), with a rich progress bar."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from app.db.url import pin_database_url
from app.settings import get_settings

console = Console(stderr=True)
_CHUNK = 1 << 20


class ResourceName(StrEnum):
    customers = "customers"
    managers = "managers"


class FormatName(StrEnum):
    csv = "csv"
    ndjson = "ndjson"


def _format_for(path: Path, given: FormatName | None) -> FormatName:
    if given is not None:
        return given
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return FormatName.csv
    if suffix in (".ndjson", ".jsonl"):
        return FormatName.ndjson
    raise typer.BadParameter("cannot tell the format from the file name; pass --format")


async def _file_chunks(handle: BinaryIO, advance: Callable[[int], None]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(handle.read, _CHUNK):
        advance(len(chunk))
        yield chunk


async def _run_import(
    url: str, resource: str, handle: BinaryIO, size: int, fmt: FormatName, mode: str, actor: str
) -> Any:
    from app.db.session import create_engine, create_session_factory, session_scope
    from app.imports import service

    engine = create_engine(url, get_settings())
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"Importing {resource}", total=size)
            async with session_scope(create_session_factory(engine)) as session:
                return await service.import_rows(
                    session,
                    resource=resource,
                    chunks=_file_chunks(handle, lambda n: progress.advance(task, n)),
                    fmt=fmt.value,
                    mode=mode,  # type: ignore[arg-type]
                    actor=actor,
                )
    finally:
        await engine.dispose()


def import_command(
    resource: Annotated[ResourceName, typer.Argument(help="What the file holds.")],
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or NDJSON file.")],
    fmt: Annotated[
        FormatName | None, typer.Option("--format", help="Default: from the file's extension.")
    ] = None,
    best_effort: Annotated[
        bool, typer.Option(help="Apply the valid rows and report the others.")
    ] = False,
    actor: Annotated[str, typer.Option(help="Recorded on the ledger for owner changes.")] = "cli",
) -> None:
    """Upsert customers or managers by external_ref from a CSV or NDJSON file.

    One transaction: by default any invalid row aborts the import and lists the row errors."""
    from app.imports.service import ImportRejected

    url = pin_database_url()
    mode = "best_effort" if best_effort else "all_or_nothing"
    chosen = _format_for(path, fmt)
    try:
        with path.open("rb") as handle:
            report = asyncio.run(
                _run_import(url, resource.value, handle, path.stat().st_size, chosen, mode, actor)
            )
    except ImportRejected as exc:
        console.print(f"[red]{exc.detail}[/red]")
        for error in exc.extra.get("errors", [])[:50]:
            console.print(f"  line {error['line']}: {error['field'] or 'row'}: {error['msg']}")
        raise typer.Exit(1) from None
    console.print(
        f"[green]{report.rows} rows[/green]: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.failed} failed"
        + (f", {report.owners_changed} owners set" if resource == "customers" else "")
    )
    for error in report.errors[:50]:
        console.print(f"  line {error.line}: {error.field or 'row'}: {error.msg}")
    if report.failed:
        raise typer.Exit(1)


async def _run_export(url: str, resource: str, fmt: FormatName, output: BinaryIO) -> int:
    from app.db.session import create_engine, create_session_factory
    from app.imports import service

    engine = create_engine(url, get_settings())
    written = 0
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"Exporting {resource}", total=None)
            async for chunk in service.export_rows(
                create_session_factory(engine), resource=resource, fmt=fmt.value
            ):
                await asyncio.to_thread(output.write, chunk)
                written += len(chunk)
                progress.update(task, completed=written)
    finally:
        await engine.dispose()
    return written


def export_command(
    resource: Annotated[ResourceName, typer.Argument(help="What to export.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; default stdout.")
    ] = None,
    fmt: Annotated[
        FormatName | None, typer.Option("--format", help="Default: from -o's extension, or csv.")
    ] = None,
) -> None:
    """Write every customer or manager as CSV or NDJSON, streamed (bounded memory)."""

    url = pin_database_url()
    chosen = _format_for(output, fmt) if output is not None and fmt is None else fmt
    chosen = chosen or FormatName.csv
    if output is None:
        written = asyncio.run(_run_export(url, resource.value, chosen, sys.stdout.buffer))
    else:
        with output.open("wb") as handle:
            written = asyncio.run(_run_export(url, resource.value, chosen, handle))
    console.print(f"[green]Exported {resource.value}[/green] ({written:,} bytes).")
