"""Optimistic concurrency without HTTP: what a client's ``If-Match`` asked for, checked by
the services that change a versioned resource (``app.api.concurrency`` reads the header)."""

from __future__ import annotations

from app.errors import StaleVersion


class Precondition:
    """What ``If-Match`` asked for: any of ``versions`` (None = ``*``, any version)."""

    def __init__(self, versions: frozenset[int] | None) -> None:
        self.versions = versions

    def check(self, current: int, resource: str) -> None:
        """StaleVersion (412) when ``current`` is not one the client expected."""
        if self.versions is not None and current not in self.versions:
            raise StaleVersion(
                f"{resource} is at version {current}, not the one in If-Match; "
                "read it again and retry.",
                current_version=current,
            )
