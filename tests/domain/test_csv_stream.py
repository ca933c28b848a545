"""Reading a CSV head and mapping PostgreSQL's line numbers to rows (no database)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from service.domain.csv_stream import SAMPLE_ROWS, LineTracker, read_head
from service.domain.errors import InvalidInput

pytestmark = pytest.mark.anyio


async def chunks(parts: Sequence[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def test_head_reads_only_the_sample() -> None:
    rows = b"".join(b"%d,x\n" % i for i in range(10 * SAMPLE_ROWS))
    stream = chunks(split(b"\xef\xbb\xbfid,name\n" + rows, 1000))
    head = await read_head(stream)
    assert head.header == ["id", "name"]  # the BOM is gone
    assert len(head.sample) == SAMPLE_ROWS and head.sample[0] == ["0", "x"]
    assert len(head.consumed) < len(rows) // 5
    rest = b"".join([part async for part in stream])
    assert head.consumed + rest == b"\xef\xbb\xbfid,name\n" + rows


async def test_head_of_a_short_or_empty_csv() -> None:
    head = await read_head(chunks([b'a,"b\nc"\r\n1,"2\n', b'3"\r\n']))
    assert head.header == ["a", "b\nc"] and head.sample == [["1", "2\n3"]] and head.eol == b"\n"
    with pytest.raises(InvalidInput):
        await read_head(chunks([b"", b"  \n"]))
    with pytest.raises(InvalidInput):
        await read_head(chunks([b"\xff\xfe,a\n1,2\n"]))


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_tracker_maps_lines_to_rows(size: int) -> None:
    data = b'h1,h2\n1,"multi\nline\n"\n2,"a ""quoted""\nvalue"\n3,plain\n4,last'
    tracker = LineTracker()
    for part in split(data, size):
        tracker.feed(part)
    assert tracker.records() == 5  # header + 4 rows
    # physical lines: 1 header, 2-4 row 1, 5-6 row 2, 7 row 3, 8 row 4
    assert [tracker.row_of_line(n) for n in range(1, 9)] == [0, 1, 1, 1, 2, 2, 3, 4]


def test_tracker_counts_a_final_newline_once() -> None:
    tracker = LineTracker()
    tracker.feed(b"a\n1\n2\n")
    assert tracker.records() == 3
    tracker = LineTracker(b"\r")
    tracker.feed(b"a\r1\r2")
    assert tracker.records() == 3


async def test_head_of_one_huge_chunk_parses_only_the_sample() -> None:
    body = b"n,t\n" + b"".join(b'%d,"a\nb"\n' % i for i in range(200_000))
    head = await read_head(chunks([body]))
    assert head.consumed == body and head.header == ["n", "t"]
    assert len(head.sample) == SAMPLE_ROWS and head.sample[-1] == [str(SAMPLE_ROWS - 1), "a\nb"]
