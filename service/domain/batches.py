"""Training rows as a compact columnar batch, stored in PostgreSQL as msgpack."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from service.domain.errors import FieldError, InvalidInput
from service.estimators.paths import item, member

Scalar = str | int | float | bool | None


class Batch(msgspec.Struct, array_like=True):
    columns: list[str]
    rows: list[list[Scalar]]

    def __len__(self) -> int:
        return len(self.rows)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Batch)


def encode(batch: Batch) -> bytes:
    try:
        return _encoder.encode(batch)
    except OverflowError:  # an integer msgpack cannot hold: rare, so only then look for it
        return _encoder.encode(_wide_ints_as_floats(batch))


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _wide_ints_as_floats(batch: Batch) -> Batch:
    """Integers beyond 64 bits as floats, as a dataset column of them would be; InvalidInput
    (at `$.data[i].column`: inline records are the only rows that can hold them) for those
    beyond even a float."""

    def fit(i: int, j: int, value: Scalar) -> Scalar:
        if type(value) is not int or _INT64_MIN <= value <= _INT64_MAX:
            return value
        try:
            return float(value)
        except OverflowError:
            loc = member(item("$.data", i), batch.columns[j])
            raise InvalidInput(
                f"{loc}: the number is beyond the floating-point range",
                [FieldError(loc, "number out of range")],
            ) from None

    rows = [[fit(i, j, v) for j, v in enumerate(row)] for i, row in enumerate(batch.rows)]
    return Batch(columns=batch.columns, rows=rows)


def decode(data: bytes) -> Batch:
    return _decoder.decode(data)


def from_records(records: Sequence[dict[str, Any]]) -> Batch:
    """Columns in first-seen order; a key missing from a record reads as null."""
    if not records:
        return Batch(columns=[], rows=[])
    first = list(records[0])
    if all(list(r) == first for r in records):  # the common case: every record alike
        return Batch(columns=first, rows=[list(r.values()) for r in records])
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    names = list(columns)
    return Batch(columns=names, rows=[[r.get(c) for c in names] for r in records])


def concat(batches: Sequence[Batch]) -> Batch:
    """Rows of several batches under the union of their columns (missing values are null)."""
    if len(batches) == 1:
        return batches[0]
    columns: dict[str, None] = {}
    for batch in batches:
        columns.update(dict.fromkeys(batch.columns))
    names = list(columns)
    rows: list[list[Scalar]] = []
    for batch in batches:
        if batch.columns == names:
            rows.extend(batch.rows)
        else:
            index = [batch.columns.index(c) if c in batch.columns else -1 for c in names]
            rows.extend([[row[i] if i >= 0 else None for i in index] for row in batch.rows])
    return Batch(columns=names, rows=rows)


class BatchWriter:
    """Encodes a batch chunk by chunk, as `encode` would encode it whole, so that a large read
    is held as compact msgpack bytes rather than as every row's Python list at once."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.rows = 0
        self._parts: list[bytes] = []
        self._columns = _encoder.encode(columns)

    def add(self, rows: list[list[Scalar]]) -> None:
        if not rows:
            return
        encoded = encode(Batch(columns=self.columns, rows=rows))
        # A batch is [columns, rows]: keep only the items of the rows array.
        prefix = 1 + len(self._columns) + len(_array_header(len(rows)))
        self._parts.append(encoded[prefix:])
        self.rows += len(rows)

    def finish(self) -> bytes:
        parts, self._parts = self._parts, []
        return b"".join([b"\x92", self._columns, _array_header(self.rows), *parts])


def _array_header(length: int) -> bytes:
    """msgpack's header of an array of `length` items."""
    if length < 16:
        return bytes([0x90 | length])
    if length < 2**16:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")
