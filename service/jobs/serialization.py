"""msgpack job payloads for arq, never pickle: anyone who can write to Redis must not run code.

arq stores a failed job's exception as its result, so exceptions are encoded as an Ext holding
(type name, message) and rebuilt only for an allow-list; anything else becomes `JobFailed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec

_EXCEPTION_EXT = 1


class JobFailed(Exception):
    """A job's exception of a type we do not rebuild from Redis."""


_ALLOWED: dict[str, Callable[[str], BaseException]] = {
    "CancelledError": asyncio.CancelledError,
    "TimeoutError": TimeoutError,
}


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, BaseException):
        return msgspec.msgpack.Ext(
            _EXCEPTION_EXT, msgspec.msgpack.encode([type(obj).__name__, str(obj)])
        )
    raise NotImplementedError(f"cannot serialize {type(obj).__name__}")


def _ext_hook(code: int, data: memoryview) -> Any:
    if code != _EXCEPTION_EXT:
        raise ValueError(f"unknown msgpack extension {code}")
    name, message = msgspec.msgpack.decode(data, type=tuple[str, str])
    factory = _ALLOWED.get(name)
    return factory(message) if factory else JobFailed(f"{name}: {message}")


serialize: Callable[[Any], bytes] = msgspec.msgpack.Encoder(enc_hook=_enc_hook).encode
deserialize: Callable[[bytes], Any] = msgspec.msgpack.Decoder(ext_hook=_ext_hook).decode
