"""Text from files and users, made safe to print on a terminal.

A file name or a person's name may hold escape sequences (which retitle or clear
the terminal) or newlines (which forge report lines). Every such character is
shown as ``\\xNN`` (``\\uNNNN`` above 0xFF): C0 and C1 controls, DEL, line and
paragraph separators, the bidirectional overrides that reorder a line, and the
bytes of a name that is not valid UTF-8 (surrogate escapes). JSON output needs
none of this: ``json.dumps`` escapes control characters itself.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(text: object) -> str:
    """``str(text)`` with every control character escaped, as described above."""
    return _UNSAFE.sub(_escape, str(text))
