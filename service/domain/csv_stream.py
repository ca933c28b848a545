"""CSV uploads as a stream: read the header and a sample, then pass the bytes on untouched.

The service never parses a whole CSV body in Python: `read_head` reads just enough to know the
header and the first `SAMPLE_ROWS` rows (to infer column types), and PostgreSQL's own CSV parser
(`COPY ... FROM STDIN (FORMAT csv)`) reads every byte, the head included, as the body arrives.

`LineTracker` watches the bytes go by and keeps what is needed to speak about rows: PostgreSQL
reports errors by *physical* line, and a quoted field may span lines, so the tracker records
which newlines fall inside quotes (PostgreSQL's CSV mode toggles "in quotes" at every quote
character, which a doubled quote toggles twice). It also counts the records, so a lone `\\.`
line, which PostgreSQL takes as the end of the data, cannot silently drop the rows after it.
"""

from __future__ import annotations

import csv
import io
import itertools
from array import array
from bisect import bisect_left
from collections.abc import AsyncIterator
from dataclasses import dataclass

from service.domain.errors import FieldError, InvalidInput

SAMPLE_ROWS = 1_000
MAX_HEAD_BYTES = 4 * 1024 * 1024  # stop sampling early when the first rows are this large
_MAX_TRACKED = 1_000_000  # embedded newlines remembered for row numbers (8 MB at most)
BOM = b"\xef\xbb\xbf"

# Python's csv module refuses fields over 128 KiB; PostgreSQL takes them, so the head must too.
# The limit is process-wide; a field in the head can be no larger than the head.
csv.field_size_limit(max(csv.field_size_limit(), MAX_HEAD_BYTES))


@dataclass
class CsvHead:
    """The header, a sample of rows (as text fields) and the bytes read to get them."""

    header: list[str]
    sample: list[list[str]]
    consumed: bytes
    eol: bytes  # b"\n" (also for \r\n) or b"\r"


async def read_head(stream: AsyncIterator[bytes]) -> CsvHead:
    """Reads from `stream` until the header and `SAMPLE_ROWS` rows (or the end) are in."""
    buffer = bytearray()
    ended = False
    newlines = 0
    while newlines <= SAMPLE_ROWS + 1 and len(buffer) < MAX_HEAD_BYTES:
        try:
            chunk = await anext(stream)
        except StopAsyncIteration:
            ended = True
            break
        buffer += chunk
        newlines += chunk.count(b"\n")
    consumed = bytes(buffer)
    body = consumed[len(BOM) :] if consumed.startswith(BOM) else consumed
    if not body.strip():
        raise InvalidInput("the CSV is empty", [FieldError("$.header", "expected a header line")])
    whole = ended and len(body) <= MAX_HEAD_BYTES
    if not whole:  # the last line may be cut short: leave it to PostgreSQL
        body = body[:MAX_HEAD_BYTES]
        body = body[: max(body.rfind(b"\n"), body.rfind(b"\r")) + 1]
    text = body.decode("utf-8", errors="replace")
    try:
        records = list(itertools.islice(csv.reader(io.StringIO(text, newline="")), SAMPLE_ROWS + 2))
    except csv.Error as exc:
        raise InvalidInput(
            f"the CSV is malformed: {exc}", [FieldError("$.data", str(exc))]
        ) from None
    if not whole and len(records) > 1:
        records.pop()  # may be a quoted field that continues beyond the head
    header = records[0] if records else []
    if "\ufffd" in "".join(header):
        raise InvalidInput(
            "the CSV header is not UTF-8", [FieldError("$.header", "invalid UTF-8 bytes")]
        )
    eol = b"\n" if b"\n" in body else b"\r"
    return CsvHead(header, records[1 : SAMPLE_ROWS + 1], consumed, eol)


class LineTracker:
    """Maps PostgreSQL's physical line numbers of a CSV stream to records (see module doc)."""

    def __init__(self, eol: bytes = b"\n") -> None:
        self.eol = eol
        self.lines_ended = 0  # physical line ends seen
        self.embedded_count = 0  # of which inside quotes
        self._embedded = array("q")  # physical line numbers whose end is inside quotes
        self._in_quote = False
        self._last = b""

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._last = chunk[-1:]
        if b'"' not in chunk:
            self._count(chunk.count(self.eol))
            return
        for i, part in enumerate(chunk.split(b'"')):
            if i:
                self._in_quote = not self._in_quote
            self._count(part.count(self.eol))

    def _count(self, ends: int) -> None:
        if ends and self._in_quote:
            self.embedded_count += ends
            if len(self._embedded) + ends <= _MAX_TRACKED:
                first = self.lines_ended + 1
                self._embedded.extend(range(first, first + ends))
        self.lines_ended += ends

    @property
    def exact(self) -> bool:
        return len(self._embedded) == self.embedded_count

    def records(self) -> int:
        """Records in the stream so far, the header included."""
        lines = self.lines_ended + (1 if self._last not in (b"", b"\n", b"\r") else 0)
        return lines - self.embedded_count

    def row_of_line(self, line: int) -> int | None:
        """The 1-based data row (the header is row 0) on physical line `line`, when known."""
        if not self.exact:
            return None
        return line - bisect_left(self._embedded, line) - 1

    async def watch(self, first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`first` then `rest`, fed to the tracker on the way."""
        if first:
            self.feed(first)
            yield first
        async for chunk in rest:
            self.feed(chunk)
            yield chunk


def header_error(i: int, msg: str) -> InvalidInput:
    return InvalidInput(f"CSV header: {msg}", [FieldError(f"$.header[{i}]", msg)])
