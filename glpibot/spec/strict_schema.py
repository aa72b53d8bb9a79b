"""A JSON Schema validator whose `pattern` anchors hold for the whole string.

jsonschema checks `pattern` with Python's `re.search`, where `$` also
matches just before a final line break, so `^[a-z.]+$` would accept
"nginx.service\\n" and let a newline reach a remote command line.
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


StrictValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})
