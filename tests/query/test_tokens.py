"""The tokenizer: words, quoted strings with backslash escapes, symbols, IN punctuation."""

from __future__ import annotations

import pytest

from service.domain.errors import BadRequest
from service.query.tokens import Kind, tokenize


def kinds_and_texts(term: str) -> list[tuple[str, str]]:
    return [(t.kind.value, t.text) for t in tokenize(term, "where[0]")]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("a = b", [("word", "a"), ("symbol", "="), ("word", "b")]),
        ("a=b", [("word", "a"), ("symbol", "="), ("word", "b")]),
        ("a!=b", [("word", "a"), ("symbol", "!="), ("word", "b")]),
        ("a<=-1", [("word", "a"), ("symbol", "<="), ("word", "-1")]),
        ("a>=1e5", [("word", "a"), ("symbol", ">="), ("word", "1e5")]),
        ("a<b", [("word", "a"), ("symbol", "<"), ("word", "b")]),
        ("a > b", [("word", "a"), ("symbol", ">"), ("word", "b")]),
        ("hello! x", [("word", "hello!"), ("word", "x")]),
        ("O'Brien", [("word", "O'Brien")]),
        ('"Iris model"', [("string", "Iris model")]),
        ("'Iris model'", [("string", "Iris model")]),
        (r'"say \"hi\""', [("string", 'say "hi"')]),
        (r"'it\'s'", [("string", "it's")]),
        (r'"a\\b"', [("string", "a\\b")]),
        (r'"\n"', [("string", "n")]),
        ('"it\'s"', [("string", "it's")]),
        ('""', [("string", "")]),
        ("x IN (a, 'b c',d)", [
            ("word", "x"), ("word", "IN"), ("(", "("), ("word", "a"), (",", ","),
            ("string", "b c"), (",", ","), ("word", "d"), (")", ")"),
        ]),
        ("t >= 2026-01-01T10:00:00+01:00", [
            ("word", "t"), ("symbol", ">="), ("word", "2026-01-01T10:00:00+01:00"),
        ]),
        ("“quoted”", [("word", "“quoted”")]),  # homoglyph quotes are plain characters
        ("  \t ", []),
    ],
)  # fmt: skip
def test_terms_split_into_typed_tokens(term: str, expected: list[tuple[str, str]]) -> None:
    assert kinds_and_texts(term) == expected


def test_tokens_know_their_positions() -> None:
    tokens = tokenize('ab = "c d"', "where[0]")
    assert [t.pos for t in tokens] == [0, 3, 5]
    assert tokens[2].kind is Kind.STRING


@pytest.mark.parametrize("term", ['a = "abc', "a = 'abc", 'a = "abc\\"', "a = '", 'a = "\\'])
def test_an_unterminated_quote_is_located(term: str) -> None:
    with pytest.raises(BadRequest) as caught:
        tokenize(term, "where[3]")
    assert caught.value.errors[0].loc == "where[3]"
    assert "unterminated quote" in caught.value.errors[0].msg
