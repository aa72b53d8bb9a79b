"""A JSON Schema validator whose `pattern` anchors hold for the whole string.

jsonschema checks `pattern` with Python's `re.search`, where `$` also
matches just before a final line break, so `^[a-z.]+$` would accept
"nginx.service\\n" and let a newline reach a remote command line. Its
`integer` type also accepts floats such as 200.0, which this validator
does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError


@lru_cache(maxsize=256)
def _end_anchored(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _end_anchored(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _is_integer(checker: Any, instance: Any) -> bool:
    # JSON Schema counts 200.0 as an integer, but the actions compare and
    # iterate these values as Python ints, so a float is rejected here.
    return isinstance(instance, int) and not isinstance(instance, bool)


_TYPE_CHECKER = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer)

StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"pattern": _pattern}, type_checker=_TYPE_CHECKER
)
