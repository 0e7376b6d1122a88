"""The subset of the Drive v2 ``q`` language the emulator understands.

Grammar (case-insensitive keywords, strings in single quotes with ``\\'`` escapes)::

    expr   := term ("or" term)*
    term   := factor ("and" factor)*
    factor := "not" factor | "(" expr ")" | "'<id>' in parents"
            | ("title" | "mimeType") ("=" | "!=" | "contains") "'...'"
            | "trashed" ("=" | "!=") ("true" | "false")

``title =`` compares case-insensitively and ``contains`` is a case-insensitive substring test,
as on real Drive (close enough for our use). Anything else is a 400 ``invalidQuery``, so a client
that relies on an unsupported construct fails loudly instead of getting a silently wrong listing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[Any], bool]

_TOKEN = re.compile(r"\s*(?:('(?:[^'\\]|\\.)*')|(!=|=|\(|\))|([A-Za-z_]+))")


class QueryError(ValueError):
    pass


def _tokenize(q: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    q = q.strip()
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if not m or m.end() == pos:
            raise QueryError(f"cannot parse query at {q[pos:]!r}")
        tokens.append(m.group(m.lastindex or 0))
        pos = m.end()
    return tokens


def _unquote(token: str) -> str:
    if not (token.startswith("'") and token.endswith("'")):
        raise QueryError(f"expected a quoted string, got {token!r}")
    return re.sub(r"\\(.)", r"\1", token[1:-1])


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        if self.i >= len(self.tokens):
            raise QueryError("unexpected end of query")
        self.i += 1
        return self.tokens[self.i - 1]

    def expr(self) -> Predicate:
        parts = [self.term()]
        while (self.peek() or "").lower() == "or":
            self.take()
            parts.append(self.term())
        return lambda f: any(p(f) for p in parts)

    def term(self) -> Predicate:
        parts = [self.factor()]
        while (self.peek() or "").lower() == "and":
            self.take()
            parts.append(self.factor())
        return lambda f: all(p(f) for p in parts)

    def factor(self) -> Predicate:
        tok = self.take()
        if tok.lower() == "not":
            inner = self.factor()
            return lambda f: not inner(f)
        if tok == "(":
            inner = self.expr()
            if self.take() != ")":
                raise QueryError("missing )")
            return inner
        if tok.startswith("'"):
            value = _unquote(tok)
            if self.take().lower() != "in" or self.take().lower() != "parents":
                raise QueryError("only '<id>' in parents is supported")
            return lambda f: value in f.parents
        field, op = tok, self.take().lower()
        if op not in ("=", "!=", "contains"):
            raise QueryError(f"unsupported operator {op!r}")
        raw = self.take()
        if field == "trashed" and op != "contains":
            want = raw.lower() == "true"
            if raw.lower() not in ("true", "false"):
                raise QueryError("trashed takes true or false")
            return (lambda f: f.trashed == want) if op == "=" else (lambda f: f.trashed != want)
        if field not in ("title", "mimeType"):
            raise QueryError(f"unsupported field {field!r}")
        value = _unquote(raw).lower()

        def attr(f: Any) -> str:
            return (f.title if field == "title" else f.mime_type).lower()

        if op == "=":
            return lambda f: attr(f) == value
        if op == "!=":
            return lambda f: attr(f) != value
        return lambda f: value in attr(f)


def compile_query(q: str | None) -> Predicate:
    if not q or not q.strip():
        return lambda f: True
    parser = _Parser(_tokenize(q))
    pred = parser.expr()
    if parser.peek() is not None:
        raise QueryError(f"unexpected {parser.peek()!r}")
    return pred
