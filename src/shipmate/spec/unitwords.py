"""Splitting unit-file values into words the way systemd does (pure).

Words are separated by whitespace; double and single quotes group; inside double quotes and
outside quotes, backslash starts a C-style escape (``\\n``, ``\\t``, ``\\\\``, ``\\"``,
``\\xNN``, ``\\NNN`` octal, ``\\uNNNN``), so any value, newlines included, can be written on
one line: ``Environment="MOTD=line one\\nline two"``. Inside single quotes text is literal.
"""

from __future__ import annotations

from shipmate.errors import ValidationError

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
           "s": " ", "\\": "\\", '"': '"', "'": "'"}


def _escape(text: str, i: int) -> tuple[str, int]:
    """Decode the escape whose backslash is at ``text[i]``; return (char, next index)."""
    if i + 1 >= len(text):
        raise ValidationError("value ends with a lone backslash")
    c = text[i + 1]
    if c in _SIMPLE:
        return _SIMPLE[c], i + 2
    for prefix, width, base in (("x", 2, 16), ("u", 4, 16), ("U", 8, 16)):
        if c == prefix:
            digits = text[i + 2:i + 2 + width]
            if len(digits) != width:
                raise ValidationError(f"bad escape \\{c}{digits}")
            try:
                return chr(int(digits, base)), i + 2 + width
            except ValueError:
                raise ValidationError(f"bad escape \\{c}{digits}") from None
    if c in "01234567":
        digits = text[i + 1:i + 4]
        if len(digits) == 3 and all(d in "01234567" for d in digits):
            return chr(int(digits, 8)), i + 4
    return c, i + 2  # unknown escapes keep the character, as systemd's relaxed mode does


def split_words(text: str) -> list[str]:
    """Split ``text`` into words with systemd's quoting and C escapes."""
    words: list[str] = []
    cur: list[str] = []
    in_word = False
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                cur.append(ch)
            i += 1
        elif ch == "\\":
            decoded, i = _escape(text, i)
            cur.append(decoded)
            in_word = True
        elif quote == '"':
            if ch == '"':
                quote = ""
            else:
                cur.append(ch)
            i += 1
        elif ch in ("'", '"'):
            quote, in_word = ch, True
            i += 1
        elif ch.isspace():
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
            i += 1
        else:
            cur.append(ch)
            in_word = True
            i += 1
    if quote:
        raise ValidationError(f"unterminated {quote} quote")
    if in_word:
        words.append("".join(cur))
    return words
