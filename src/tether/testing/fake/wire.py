"""Wire details shared by the fake's endpoints: ids, thinking signatures, JSON and SSE framing."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import random
from typing import Any

from tether.api.types import dumps

# Real ids use a base58-like alphabet: msg_01XFDUDYJgAACzvnptvVoYEL, req_011CSHoEeqs5C35K2UUqR7Fy.
ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


_TO_ALPHABET = bytes(ALPHABET.encode()[b % len(ALPHABET)] for b in range(256))  # a random byte to a letter


class Ids:
    """Fresh ``msg_``, ``toolu_``, ``srvtoolu_`` and ``req_`` ids, reproducible from a seed."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def _tail(self, n: int) -> str:
        return self._rng.randbytes(n).translate(_TO_ALPHABET).decode()  # a tenth of random.choices's cost

    def message(self) -> str:
        return "msg_01" + self._tail(22)

    def tool_use(self) -> str:
        return "toolu_01" + self._tail(22)

    def server_tool_use(self) -> str:
        return "srvtoolu_01" + self._tail(22)

    def request(self) -> str:
        return "req_011C" + self._tail(20)


class Signer:
    """Signs thinking text the way the API does in spirit: an opaque token bound to the text.

    A thinking block sent back with a signature that does not match its text is refused, so a
    client that edits or re-creates thinking blocks is caught. Signatures given verbatim in a script
    are remembered and accepted too.
    """

    def __init__(self, secret: bytes = b"tether-fake") -> None:
        self._secret = secret
        self._scripted: set[str] = set()

    def sign(self, thinking: str) -> str:
        return _signature(self._secret, thinking)

    def remember(self, signature: str) -> None:
        self._scripted.add(signature)

    def verify(self, thinking: str, signature: str) -> bool:
        if signature in self._scripted:
            return True
        return hmac.compare_digest(signature, self.sign(thinking))


@functools.lru_cache(maxsize=1024)  # a thought comes back in every later request of its run
def _signature(secret: bytes, thinking: str) -> str:
    digest = hmac.new(secret, thinking.encode(), hashlib.sha256).digest()
    return "Eq" + base64.b64encode(digest * 3).decode()


def json_bytes(value: Any) -> bytes:
    return dumps(value).encode()


def sse_frame(data: dict[str, Any]) -> str:
    """One named event: the ``event:`` line always equals ``data.type``."""
    return f"event: {data['type']}\ndata: {dumps(data)}\n\n"


def error_body(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
