"""The one keyset-paging helper every list uses."""

from app.core.pagination import cursor_key, cursor_value, decode_cursor, keyset_page


def test_a_page_has_a_cursor_only_when_the_extra_row_was_read():
    rows = [{"id": i} for i in range(4)]
    items, cursor = keyset_page(rows, limit=3, item=lambda r: r["id"], key=lambda r: [r["id"]])
    assert items == [0, 1, 2]
    assert decode_cursor(cursor, (int,)) == [2], "the cursor is the last item's key"
    last, none = keyset_page(rows[:3], limit=3, item=lambda r: r["id"], key=lambda r: [r["id"]])
    assert last == [0, 1, 2] and none is None


def test_the_first_page_has_no_key():
    assert cursor_key(None, (int,)) is None and cursor_value("", int) is None
    _, cursor = keyset_page([1, 2], limit=1, item=str, key=lambda r: [r])
    assert cursor_value(cursor, int) == 1
