"""Reading and writing text files so that an edit changes only what it means to change.

``TextFile.decode`` detects the encoding — UTF-8, UTF-8 with BOM, UTF-16 with BOM (either byte
order), Latin-1 as the fallback — and the line endings; when every line ends in CRLF the text is
handed out with plain ``\\n`` and ``encode`` puts the CRLFs back. Files with NUL bytes or mostly
control characters are refused as binary. ``write_atomic`` writes a temporary file beside the target
and renames it over, keeping the target's permission bits.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path

from tether.tools.base import ToolError

_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_CONTROLS = bytes(b for b in range(0x20) if b not in b"\t\n\r\f\b\x1b")  # not found in text files


class BinaryFile(ToolError):
    """The file is not text this editor can keep intact."""


@dataclass(frozen=True)
class TextFile:
    text: str
    encoding: str = "utf-8"
    bom: bytes = b""
    crlf: bool = False

    @classmethod
    def decode(cls, data: bytes, name: str) -> TextFile:
        for bom, encoding in _BOMS:
            if data.startswith(bom):
                try:
                    return cls(data[len(bom):].decode(encoding), encoding, bom)._split_crlf()
                except UnicodeDecodeError:
                    why = f"it starts with a {encoding} byte-order mark but is not {encoding}"
                    raise _binary(name, why) from None
        if b"\x00" in data:
            raise _binary(name, "it contains NUL bytes")
        controls = len(data) - len(data.translate(None, _CONTROLS))
        if controls > max(1, len(data) // 100):
            raise _binary(name, "it is mostly control characters, not UTF-8, UTF-16 or Latin-1 text")
        try:
            return cls(data.decode("utf-8"))._split_crlf()
        except UnicodeDecodeError:
            return cls(data.decode("latin-1"), "latin-1")._split_crlf()

    def _split_crlf(self) -> TextFile:
        lf = self.text.count("\n")
        if lf and self.text.count("\r\n") == lf:
            return replace(self, text=self.text.replace("\r\n", "\n"), crlf=True)
        return self

    def with_text(self, text: str) -> TextFile:
        """The same encoding and line endings around new text (CRLFs in ``text`` are taken as newlines)."""
        return replace(self, text=text.replace("\r\n", "\n") if self.crlf else text)

    def encode(self, name: str) -> bytes:
        text = self.text.replace("\n", "\r\n") if self.crlf else self.text
        try:
            return self.bom + text.encode(self.encoding)
        except UnicodeEncodeError as exc:
            bad = text[exc.start:exc.end]
            raise ToolError(f"{name} is {self.encoding} text, which cannot hold {bad!r}; nothing was written. "
                            "Use characters the file's encoding can represent.") from None


def _binary(name: str, why: str) -> BinaryFile:
    return BinaryFile(f"{name} looks like a binary file ({why}); this editor only edits text. "
                      "Inspect it with bash instead (e.g. `file`, `xxd | head`).")


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename, so that a crash leaves the old file or the new one,
    never a mix. The target keeps its permission bits; a new file gets the umask's (the kernel applies
    it). Like the session store (``synchronous=NORMAL``), it does not wait for the disk: a write survives
    a crash of the process, and a power cut may lose the last ones."""
    try:
        mode: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if mode is not None:
                os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _temporary(path: Path) -> tuple[int, Path]:
    """A new file beside ``path``, open for writing, with the default mode of new files."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue

