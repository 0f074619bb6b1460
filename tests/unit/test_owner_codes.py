"""Owner UUIDs from a binary COPY matched to manager indices, whatever the UUIDs look like."""

from __future__ import annotations

import uuid

import numpy as np

from app.assignments.columnar import _OwnerIndex


def _owners(ids: list[uuid.UUID], picks: list[int]) -> np.ndarray:
    return np.frombuffer(b"".join(ids[i].bytes for i in picks), dtype="V16")


def test_random_ids_map_to_their_index():
    ids = [uuid.uuid4() for _ in range(500)]
    picks = list(np.random.default_rng(7).integers(0, len(ids), 5_000))
    assert _OwnerIndex(ids).codes(_owners(ids, picks)).tolist() == picks


def test_ids_sharing_leading_bits_or_their_whole_high_half_still_map_exactly():
    base = uuid.uuid4().bytes
    ids = (
        [
            uuid.UUID(bytes=base[:8] + bytes([i]) * 8)
            for i in range(4)  # one high half
        ]
        + [uuid.UUID(bytes=bytes([0, 0, i]) + base[3:]) for i in range(4)]
    )  # one leading slot
    picks = [7, 0, 3, 5, 1, 2, 6, 4, 0, 7]
    assert _OwnerIndex(ids).codes(_owners(ids, picks)).tolist() == picks


def test_no_owners():
    assert _OwnerIndex([uuid.uuid4()]).codes(np.zeros(0, dtype="V16")).tolist() == []


def test_an_owner_not_among_the_managers_is_coded_minus_one():
    ids = [uuid.uuid4() for _ in range(300)]
    others = [uuid.uuid4() for _ in range(3)]
    high_twin = uuid.UUID(bytes=ids[5].bytes[:8] + bytes(8))  # shares a manager's high half
    owners = np.frombuffer(
        b"".join(u.bytes for u in (ids[0], others[0], high_twin, ids[299], others[2])),
        dtype="V16",
    )
    assert _OwnerIndex(ids).codes(owners).tolist() == [0, -1, -1, 299, -1]


def test_owners_read_from_a_strided_field_of_the_rows():
    ids = [uuid.uuid4() for _ in range(50)]
    rows = np.zeros(4, dtype=[("n", ">i2"), ("owner", "V16"), ("x", ">i4")])
    rows["owner"] = np.frombuffer(b"".join(ids[i].bytes for i in (3, 1, 4, 1)), dtype="V16")
    assert _OwnerIndex(ids).codes(rows["owner"]).tolist() == [3, 1, 4, 1]
