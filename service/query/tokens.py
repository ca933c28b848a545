"""Tokenizer of one `where` term.

Tokens: bare words, quoted strings, the symbols `= != < <= > >=`, and `(` `,` `)` for IN lists.
A bare word runs up to whitespace or one of `( ) , = < >` or `!=`; a quote (`"` or `'`) opens a
string only at the start of a token, so `O'Brien` is one word. Inside quotes a backslash takes
the next character literally (`"say \\"hi\\""`, `'it\\'s'`, `"a\\\\b"`). Nothing nests, so there
is no depth to exceed; an unterminated quote is an error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from service.query.limits import bad


class Kind(enum.Enum):
    WORD = "word"
    STRING = "string"  # quoted; `text` is the unescaped content
    SYMBOL = "symbol"  # = != < <= > >=
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str
    pos: int  # offset in the term, for error messages


_QUOTES = "\"'"
_PUNCT = {"(": Kind.LPAREN, ")": Kind.RPAREN, ",": Kind.COMMA}
_WORD_STOP = frozenset("(),=<>")


def tokenize(term: str, loc: str) -> list[Token]:
    """Split `term` into tokens; BadRequest (at `loc`) on an unterminated quote or stray `!`."""
    tokens: list[Token] = []
    i, n = 0, len(term)
    while i < n:
        ch = term[i]
        if ch.isspace():
            i += 1
        elif ch in _QUOTES:
            text, end = _quoted(term, i, loc)
            tokens.append(Token(Kind.STRING, text, i))
            i = end
        elif ch in _PUNCT:
            tokens.append(Token(_PUNCT[ch], ch, i))
            i += 1
        elif ch in "<>" or term.startswith("=", i) or term.startswith("!=", i):
            symbol = term[i : i + 2] if term.startswith(("<=", ">=", "!="), i) else ch
            tokens.append(Token(Kind.SYMBOL, symbol, i))
            i += len(symbol)
        else:
            start = i
            while i < n and not _ends_word(term, i):
                i += 1
            tokens.append(Token(Kind.WORD, term[start:i], start))
    return tokens


def _ends_word(term: str, i: int) -> bool:
    ch = term[i]
    return ch.isspace() or ch in _WORD_STOP or term.startswith("!=", i)


def _quoted(term: str, start: int, loc: str) -> tuple[str, int]:
    """The unescaped content of the string opening at `start`, and the offset after it."""
    quote = term[start]
    out: list[str] = []
    i = start + 1
    while i < len(term):
        ch = term[i]
        if ch == "\\" and i + 1 < len(term):
            out.append(term[i + 1])
            i += 2
        elif ch == quote:
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise bad(loc, f"unterminated quote starting at position {start}")
