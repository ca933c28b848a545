"""An SQL injection corpus, shared by the query language's tests and the dataset routes' tests."""

from __future__ import annotations

PAYLOADS = [
    "'", '"', "''", "\\", "\\'", "\\\\'", ";", "--", "/*", "*/", "$1", "$2::text", "$$",
    "' OR '1'='1", '" OR "1"="1', "' OR 1=1 --", "') OR ('1'='1", "1) OR (1=1", "0 OR 1=1",
    "1 OR TRUE", "x' IS NOT NULL OR 'a", "id) OR TRUE --",
    "1; DROP TABLE canary", "'; DROP TABLE canary; --", '"; DROP TABLE canary; --',
    "name; DROP TABLE canary", 'id"; DROP TABLE canary; --', "asc; DROP TABLE canary",
    "BEGIN; DELETE FROM canary; COMMIT", "$$; DROP TABLE canary; $$", "E'\\''; DROP TABLE canary",
    "/* */ DROP TABLE canary", "name /* */ = 'x'", "name -- comment",
    "1 UNION SELECT id FROM canary", "' UNION SELECT NULL, NULL --", "id UNION ALL SELECT 1",
    "count(*)", "sum) FROM canary --", "pg_sleep(10)", "COPY canary TO PROGRAM 'id'",
    "‘ OR ‘1’=‘1", "“ OR ”1”=”1", "ʼ OR 1=1 --", "＇ OR ＇1＇＝＇1", "\u2019; DROP TABLE canary",
    "\x00", "a\x00'; DROP TABLE canary; --", "\ud800", "x" * 5000, "'" * 1001, "(" * 600,
    "name = 'a' OR 1=1", '"name" = \'a\'', "NULL", "TRUE", "AND", "OR", "asc", "DESC", "",
]  # fmt: skip


def quote(text: str) -> str:
    """`text` as a double-quoted string of the query language."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
