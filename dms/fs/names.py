"""File names are bytes: how DMS holds them, and the one escaped form it shows them in.

Linux allows any byte but `/` and NUL in a name. Python hands such names over as `str`
with undecodable bytes carried as lone surrogates (PEP 383, `surrogateescape`), and DMS
keeps them in that form everywhere: in records, in Redis (both Redis clients encode and
decode with `surrogateescape`, so a name goes in and comes back byte for byte) and at the
native boundary (`os.fsencode`). Only where a name is *shown* (messages, logs, `--json`,
`--dry-run` lines) is it turned into text, by `shown()`:

- valid UTF-8 printable characters stay as they are;
- a byte that is not valid UTF-8 becomes `\\xNN` (two lower-case hex digits);
- a control character (U+0000-U+001F, U+007F) becomes `\\xNN` too: a newline or tab in
  a name never breaks a log line or a terminal;
- a backslash becomes `\\\\`, so the form is unambiguous and `unshown()` reverses it.

Messages that quote a name (an OSError's text, say) go through `printable()`, which
escapes the same bytes but leaves backslashes alone. The same form on every channel is
documented in docs/operations.md ("Names").
"""

from __future__ import annotations

import base64
import os
import re
import zlib
from collections.abc import Iterable

__all__ = ["pack_names", "printable", "shown", "unpack_names", "unshown"]

_ESCAPE = re.compile(r"\\(\\|x([0-9a-f]{2}))")


def shown(name: str | bytes) -> str:
    """`name` (a path or a file name, str from os functions or raw bytes) as printable text."""
    data = name if isinstance(name, bytes) else os.fsencode(name)
    return _escape(data.decode("utf-8", "surrogateescape"), backslashes=True)


def _escape(text: str, *, backslashes: bool) -> str:
    """Undecodable bytes (lone surrogates) and control characters as `\\xNN`; with
    `backslashes`, a backslash as two (the reversible form of shown())."""
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, carried as a lone surrogate
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif backslashes and ch == "\\":
            out.append("\\\\")
        else:
            out.append(ch)
    return "".join(out)


#: How Python's repr() spells an undecodable byte carried as a surrogate (an OSError's text
#: quotes its file names with repr): `\udcff` for the byte 0xff.
_REPR_SURROGATE = re.compile(r"\\udc([89a-f][0-9a-f])")


def printable(text: str) -> str:
    """A message that may quote names, on one printable line: undecodable bytes and control
    characters as `\\xNN`, as in shown(), whether raw or as repr() wrote them (`\\udcff`);
    other characters (backslashes too) unchanged."""
    text = _REPR_SURROGATE.sub(r"\\x\1", text)
    return text if text.isprintable() else _escape(text, backslashes=False)


def unshown(text: str) -> bytes:
    """The bytes `shown()` was given (for scripts that read DMS's output)."""
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(text):
        out += text[pos : m.start()].encode()
        out += b"\\" if m.group(1) == "\\" else bytes([int(m.group(2), 16)])
        pos = m.end()
    out += text[pos:].encode()
    return bytes(out)


def pack_names(names: Iterable[bytes]) -> str:
    """Many names (or items that hold one) as one ASCII string for a Redis value or a task
    argument: NUL-separated (no name holds a NUL), zlib-compressed, base64."""
    return base64.b64encode(zlib.compress(b"\0".join(names))).decode("ascii")


def unpack_names(packed: str) -> list[bytes]:
    """The items of a pack_names() string."""
    return zlib.decompress(base64.b64decode(packed)).split(b"\0")
