"""Training batches: written chunk by chunk, they are the bytes `encode` gives for all rows."""

from __future__ import annotations

import pytest

from service.domain import batches


@pytest.mark.parametrize("chunks", [[1], [15, 1], [3, 20], [10_000, 60_000, 5]])
def test_a_batch_written_in_chunks_is_the_batch_encoded_whole(chunks: list[int]) -> None:
    columns = ["x", "label", "n"]
    writer = batches.BatchWriter(columns)
    everything: list[list[batches.Scalar]] = []
    for size in chunks:
        rows: list[list[batches.Scalar]] = [
            [i / 7, f"row {i}", 2**64 if i == 0 else None] for i in range(size)
        ]
        writer.add(rows)
        writer.add([])
        everything += rows
    data = writer.finish()
    assert writer.rows == len(everything)
    assert data == batches.encode(batches.Batch(columns=columns, rows=everything))
    assert batches.decode(data).rows[0][2] == float(2**64)  # wide ints as floats, as before
