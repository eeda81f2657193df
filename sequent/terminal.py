"""Stored text made safe for a terminal: control characters shown escaped, never sent raw.

Step names, errors and log lines come from user code and from the store; an ``ESC`` or ``BEL``
in them would move the cursor, recolour the screen or rewrite the window's title if printed
as is. ``safe`` shows every C0 and C1 control character (and DEL) as a Python escape
(``\\x1b``), keeping newlines and tabs where the text may span lines; ``safe_line`` escapes
those too, for one table cell.
"""

from __future__ import annotations

_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
# Unicode's bidirectional overrides reorder what follows them on screen ("Trojan source").
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]

_LINE = {code: _NAMED.get(code, f"\\x{code:02x}") for code in _CONTROLS}
_LINE.update({code: f"\\u{code:04x}" for code in _BIDI})
_TEXT = {code: text for code, text in _LINE.items() if code not in (0x09, 0x0A)}


def safe(text: object) -> str:
    """``text`` as a string with control characters escaped; newlines and tabs kept."""
    return str(text).translate(_TEXT)


def safe_line(text: object) -> str:
    """``text`` as one line: every control character escaped, newlines and tabs included."""
    return str(text).translate(_LINE)


__all__ = ["safe", "safe_line"]
