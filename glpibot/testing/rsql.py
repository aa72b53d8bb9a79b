"""A small RSQL parser and evaluator, as GLPI's v2 API applies `filter=` to its lists.

Grammar: comparisons `property<op>value`, `;` for AND (binds tighter),
`,` for OR, parentheses for grouping. Values may be quoted with `"` or `'`;
an unquoted value runs to the next `;`, `,` or `)` and is trimmed.
String equality ignores case, as MariaDB's default collation does in GLPI;
`=like=` is case-sensitive and `=ilike=` is not, with `*` for any text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Union

BINARY_OPERATORS = ("==", "!=", "=in=", "=out=", "=lt=", "=le=", "=gt=", "=ge=", "=like=", "=ilike=", "=notlike=", "=notilike=")
UNARY_OPERATORS = ("=isnull=", "=notnull=", "=empty=", "=notempty=")
_SELECTOR = re.compile(r"[A-Za-z0-9_.]+")
_OPERATOR = re.compile(r"==|!=|=[a-z]+=")
_ISO_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:[+-]\d{2}:\d{2}|Z)$")


class RsqlError(ValueError):
    """The filter text is not valid RSQL."""


@dataclass(frozen=True)
class Comparison:
    selector: str
    operator: str
    value: str | tuple[str, ...] | None


@dataclass(frozen=True)
class Group:
    kind: str  # "and" or "or"
    parts: tuple["Node", ...]


Node = Union[Comparison, Group]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Node:
        node = self._or()
        if self.pos != len(self.text):
            raise RsqlError(f"unexpected {self.text[self.pos]!r} at position {self.pos}")
        return node

    def _or(self) -> Node:
        parts = [self._and()]
        while self._peek() == ",":
            self.pos += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else Group("or", tuple(parts))

    def _and(self) -> Node:
        parts = [self._primary()]
        while self._peek() == ";":
            self.pos += 1
            parts.append(self._primary())
        return parts[0] if len(parts) == 1 else Group("and", tuple(parts))

    def _primary(self) -> Node:
        if self._peek() == "(":
            self.pos += 1
            node = self._or()
            if self._peek() != ")":
                raise RsqlError(f"missing ')' at position {self.pos}")
            self.pos += 1
            return node
        return self._comparison()

    def _comparison(self) -> Comparison:
        selector = _SELECTOR.match(self.text, self.pos)
        if selector is None:
            raise RsqlError(f"expected a property name at position {self.pos}")
        self.pos = selector.end()
        operator = _OPERATOR.match(self.text, self.pos)
        if operator is None:
            raise RsqlError(f"expected an operator after {selector.group()!r}")
        op = operator.group()
        self.pos = operator.end()
        if op in UNARY_OPERATORS:
            return Comparison(selector.group(), op, None)
        if op not in BINARY_OPERATORS:
            raise RsqlError(f"unknown operator {op!r}")
        if op in ("=in=", "=out="):
            return Comparison(selector.group(), op, self._value_list())
        return Comparison(selector.group(), op, self._value())

    def _value_list(self) -> tuple[str, ...]:
        if self._peek() != "(":
            raise RsqlError(f"expected '(' after =in= or =out= at position {self.pos}")
        self.pos += 1
        values = [self._value()]
        while self._peek() == ",":
            self.pos += 1
            values.append(self._value())
        if self._peek() != ")":
            raise RsqlError(f"missing ')' at position {self.pos}")
        self.pos += 1
        return tuple(values)

    def _value(self) -> str:
        quote = self._peek()
        if quote in ('"', "'"):
            end = self.text.find(quote, self.pos + 1)
            if end == -1:
                raise RsqlError(f"unclosed quote at position {self.pos}")
            value = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return value
        end = self.pos
        while end < len(self.text) and self.text[end] not in ";,)":
            end += 1
        value = self.text[self.pos : end].strip()
        if not value:
            raise RsqlError(f"missing value at position {self.pos}")
        self.pos = end
        return value

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""


def parse(text: str) -> Node:
    """Parse a filter expression; raise RsqlError on bad syntax."""
    return _Parser(text).parse()


def selectors(node: Node) -> list[str]:
    """Return every property name the filter uses, in order."""
    if isinstance(node, Comparison):
        return [node.selector]
    return [name for part in node.parts for name in selectors(part)]


def lookup(row: dict[str, Any], selector: str) -> Any:
    """Return the value at a dotted path of a JSON object, or None when it is missing or null."""
    value: Any = row
    for part in selector.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, str):
        # Dates are compared in the database form, as GLPI passes filter values to SQL.
        match = _ISO_DATETIME.match(value)
        if match:
            return f"{match.group(1)} {match.group(2)}"
    return value


def _like(pattern: str, value: str, ignore_case: bool) -> bool:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "%":
            parts.append(".")  # GLPI turns a literal % into a one-character wildcard
        else:
            parts.append(re.escape(char))
    regex = "".join(parts)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _equal(stored: Any, text: str) -> bool:
    if isinstance(stored, bool):
        return stored == (text.lower() in ("true", "1"))
    if isinstance(stored, (int, float)):
        try:
            return float(text) == float(stored)
        except ValueError:
            return False
    return str(stored).casefold() == text.casefold()


def _order(stored: Any, text: str) -> tuple[Any, Any]:
    if isinstance(stored, (int, float)) and not isinstance(stored, bool):
        try:
            return float(stored), float(text)
        except ValueError:
            pass
    return str(stored), text


def _compare(stored: Any, operator: str, value: str | tuple[str, ...] | None) -> bool:
    if operator == "=isnull=":
        return stored is None
    if operator == "=notnull=":
        return stored is not None
    if operator == "=empty=":
        return stored is None or stored == ""
    if operator == "=notempty=":
        return stored is not None and stored != ""
    if stored is None:
        return False  # SQL: any comparison with NULL is not true

    if operator in ("=in=", "=out="):
        assert isinstance(value, tuple)
        found = any(_equal(stored, item) for item in value)
        return found if operator == "=in=" else not found

    assert isinstance(value, str)
    if operator == "==":
        return _equal(stored, value)
    if operator == "!=":
        return not _equal(stored, value)
    if operator in ("=like=", "=ilike=", "=notlike=", "=notilike="):
        matched = _like(value, str(stored), ignore_case="ilike" in operator)
        return not matched if "not" in operator else matched

    left, right = _order(stored, value)
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "=lt=": lambda a, b: a < b,
        "=le=": lambda a, b: a <= b,
        "=gt=": lambda a, b: a > b,
        "=ge=": lambda a, b: a >= b,
    }
    return comparisons[operator](left, right)


def evaluate(node: Node, row: dict[str, Any]) -> bool:
    """Return True when the row satisfies the filter."""
    if isinstance(node, Comparison):
        return _compare(lookup(row, node.selector), node.operator, node.value)
    if node.kind == "and":
        return all(evaluate(part, row) for part in node.parts)
    return any(evaluate(part, row) for part in node.parts)
