"""Uploads received in full before a transaction opens: a client that stalls mid-upload then
holds a file, not a pooled connection, a transaction and the locks it took.

Small uploads stay in memory; from `MEMORY_BYTES` on they go to an anonymous temporary file (in
`http.spool_dir`, else the system's), which the kernel removes once closed, even after a crash.
The body limit still applies while receiving, so the file is bounded by it. File calls run in a
thread, in large pieces, so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO

from service.domain.errors import Unavailable

log = logging.getLogger(__name__)

MEMORY_BYTES = 256 * 1024
PIECE_BYTES = 256 * 1024


class Spool:
    """The bytes of one upload, once received: `chunks()` reads them back from the start."""

    def __init__(self, directory: str | None) -> None:
        self._directory = directory or None
        self._file: IO[bytes] | None = None
        self._memory: list[bytes] = []
        self._pending = 0
        self.size = 0

    async def fill(self, stream: AsyncIterator[bytes]) -> None:
        async for chunk in stream:
            self._memory.append(chunk)
            self._pending += len(chunk)
            self.size += len(chunk)
            if self._pending >= MEMORY_BYTES:
                await self._flush()
        if self._file is not None:
            await self._flush()

    async def _flush(self) -> None:
        data = b"".join(self._memory)
        self._memory, self._pending = [], 0
        try:
            if self._file is None:
                self._file = await asyncio.to_thread(_temporary_file, self._directory)
            await asyncio.to_thread(self._file.write, data)
        except OSError as exc:  # full, or not writable: the deployment's problem, not a bug
            log.warning("cannot spool an upload", extra={"error": str(exc)})
            raise Unavailable("the upload spool (http.spool_dir)", retry_after=10) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._file is None:
            for chunk in self._memory:
                yield chunk
            return
        file = self._file
        await asyncio.to_thread(file.seek, 0)
        while piece := await asyncio.to_thread(file.read, PIECE_BYTES):
            yield piece

    def close(self) -> None:
        self._memory = []
        if self._file is not None:
            self._file.close()
            self._file = None


def _temporary_file(directory: str | None) -> IO[bytes]:
    return tempfile.TemporaryFile(dir=directory)


@asynccontextmanager
async def spooled(stream: AsyncIterator[bytes], directory: str | None) -> AsyncIterator[Spool]:
    """The rest of `stream`, received in full (413, a disconnect or a read timeout stop it
    here, before any transaction); its file is gone when the block ends."""
    spool = Spool(directory)
    try:
        await spool.fill(stream)
        yield spool
    finally:
        spool.close()
