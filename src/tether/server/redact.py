"""Keeping secrets out of what the service writes: logs, event streams and error messages.

``Redactor`` replaces the secrets it was given (the API key) and anything shaped like a service
token or an Anthropic key with ``***``. It is a last line of defence: the service never puts a
secret in a message on purpose, and tools run with a scrubbed environment (``tools.sandbox``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "***"
_PATTERNS = re.compile(r"tth_[0-9a-f]{16}_[A-Za-z0-9_-]{8,}|sk-ant-[A-Za-z0-9_-]{8,}")


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if "tth_" in text or "sk-ant-" in text:
            text = _PATTERNS.sub(MASK, text)
        return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's final message (and drops its arguments)."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self.redact(message), None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True
