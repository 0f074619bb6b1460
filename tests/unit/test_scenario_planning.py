"""The pure parts of a re-division: book order, stored moves."""

from __future__ import annotations

import uuid

import numpy as np

from app.engine import CustomerColumns
from app.engine.columns import uuids_to_s16
from app.scenarios import planning


def test_by_id_orders_the_book_by_customer_id_with_every_column():
    ids = [uuid.uuid4() for _ in range(500)]
    ids += [uuid.UUID(bytes=ids[0].bytes[:8] + bytes(8))]  # same first 8 bytes as another
    columns = CustomerColumns(
        ids=uuids_to_s16(ids),
        tier=np.zeros(len(ids), np.int16),
        tier_codes=("standard",),
        pinned=np.arange(len(ids)) % 2 == 0,
    )
    ordered = columns.by_id()
    got = [ordered.customer_id(i) for i in range(len(ordered))]
    assert got == sorted(ids)
    assert all(ordered.pinned[i] == (ids.index(got[i]) % 2 == 0) for i in range(len(got)))
    assert ordered.by_id() is ordered, "a book in id order is returned as is"


def test_stored_moves_round_trip():
    customers = [uuid.uuid4() for _ in range(3)]
    owners = [uuid.uuid4(), None, uuid.uuid4()]
    left = [uuid.uuid4()]
    result = planning.Redivision(
        report={},
        customer_ids=uuids_to_s16(customers),
        manager_ids=np.array([o.bytes if o else bytes(16) for o in owners], "S16"),
        violators=uuids_to_s16(left),
    )
    assert planning.unpack_moves(planning.pack_moves(result)) == (customers, owners, left)
