"""One-line messages for JSON Schema errors, in the spec's own terms.

jsonschema's own messages print Python reprs, whole schemas, or "is not
valid under any of the given schemas" for `oneOf`. Here every error becomes
one SpecIssue: the field path, the YAML line, the rule the value breaks
(from the schema's `x-message`, or built from its keywords) and the value as
the author typed it. For `oneOf`/`anyOf` the branch is chosen by the value's
type, and only that branch's errors are reported.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any, Callable

import jsonschema

from glpibot.errors import SpecIssue
from glpibot.spec.yaml_loader import LineMap, Path, format_path, printable

_SHOWN_VALUE_LIMIT = 80
_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "boolean": lambda value: isinstance(value, bool),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    "null": lambda value: value is None,
}


@dataclass(frozen=True)
class Wording:
    """How one schema names its keys in messages.

    Each hook gets the path of the mapping that contains the key, relative to
    the validated instance. `value` may return a whole message for a bad
    value, or None to keep the generic "<rule>; got <value>". `keyword` words
    the schema keywords that carry no value rule, such as a top-level `oneOf`.
    """

    unknown: Callable[[Path, str, list[str]], str]
    missing: Callable[[Path, str], str]
    value: Callable[[Path, Any, str], str | None] = lambda path, value, value_text: None
    keyword: Callable[[jsonschema.ValidationError, Path], list[tuple[Path, str]] | None] = lambda error, path: None


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _bounds_text(schema: dict[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f" from {_number_text(low)} to {_number_text(high)}"
    parts = []
    if low is not None:
        parts.append(f"at least {_number_text(low)}")
    if schema.get("exclusiveMinimum") is not None:
        parts.append(f"greater than {_number_text(schema['exclusiveMinimum'])}")
    if high is not None:
        parts.append(f"at most {_number_text(high)}")
    if schema.get("exclusiveMaximum") is not None:
        parts.append(f"less than {_number_text(schema['exclusiveMaximum'])}")
    return " " + " and ".join(parts) if parts else ""


def _count_text(low: int | None, high: int | None, noun: str) -> str:
    if low is not None and high is not None:
        return f"{low} to {high} {noun}"
    if high is not None:
        return f"at most {high} {noun}"
    if low is not None:
        return f"at least {low} {noun}"
    return noun


def rule_text(schema: Any) -> str:
    """Return the rule a schema sets, as a phrase starting with "must", for example "must be one of: GET, HEAD"."""
    if not isinstance(schema, dict):
        return "is not allowed here" if schema is False else "has an invalid value"
    if "x-message" in schema:
        return str(schema["x-message"])

    if "enum" in schema:
        return "must be one of: " + ", ".join(str(value) for value in schema["enum"])
    if "const" in schema:
        return f"must be {schema['const']}"
    for keyword in ("oneOf", "anyOf"):
        if keyword in schema:
            branches = [rule_text(branch).removeprefix("must be ") for branch in schema[keyword]]
            return "must be " + " or ".join(branches)

    kind = schema.get("type")
    if kind == "integer":
        return "must be an integer" + _bounds_text(schema)
    if kind == "number":
        return "must be a number" + _bounds_text(schema)
    if kind == "boolean":
        return "must be true or false"

    if kind == "string":
        low, high = schema.get("minLength"), schema.get("maxLength")
        text = "must be non-empty text" if low == 1 else "must be text"
        if high is not None or (low or 0) > 1:
            text += " of " + _count_text(low if (low or 0) > 1 else None, high, "characters")
        if "pattern" in schema:
            text += f" matching `{schema['pattern']}`"
        return text

    if kind == "array":
        noun = "different items" if schema.get("uniqueItems") else "items"
        return "must be a list of " + _count_text(schema.get("minItems"), schema.get("maxItems"), noun)
    if kind == "object":
        return "must be a mapping"
    return "has an invalid value"


def _expected_types(schema: Any) -> set[str]:
    if not isinstance(schema, dict):
        return set()
    kinds = {schema["type"]} if isinstance(schema.get("type"), str) else set()
    for keyword in ("oneOf", "anyOf"):
        for branch in schema.get(keyword, []):
            kinds |= _expected_types(branch)
    return kinds


def shown_value(path: Path, value: Any, lines: LineMap) -> str:
    """Return the value as the author typed it, in backticks, or a short description of a list or mapping."""
    raw = lines.raw.get(path)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        if not value:
            return "an empty list"
        return "a list of 1 item" if len(value) == 1 else f"a list of {len(value)} items"
    if raw is None:
        raw = json.dumps(value, ensure_ascii=False, default=str)
    if raw == "":
        return "nothing"
    raw = printable(raw)
    if len(raw) > _SHOWN_VALUE_LIMIT:
        raw = raw[: _SHOWN_VALUE_LIMIT - 3] + "..."
    return f"`{raw}`"


def _type_hint(schema: Any, value: Any, path: Path, lines: LineMap) -> str:
    """Return advice for a value that has the wrong YAML type because of quoting, or ""."""
    kinds = _expected_types(schema)
    raw = lines.raw.get(path, "")
    if isinstance(value, str) and raw[:1] in ("'", '"') and kinds & {"integer", "number"}:
        try:
            float(value)
        except ValueError:
            return ""
        return f", which is text; write {value} without quotes"
    if isinstance(value, str) and "boolean" in kinds:
        return "; write true or false"
    return ""


def _first_repeat(items: list[Any]) -> Any:
    seen: list[Any] = []
    for item in items:
        if item in seen:
            return item
        seen.append(item)
    return None


def _shown_for_error(error: jsonschema.ValidationError, path: Path, value: Any, lines: LineMap) -> str:
    """Describe the value the way the broken keyword needs: its length, its repeated item, or its text."""
    if error.validator == "maxLength" and isinstance(value, str):
        return f"{len(value)} characters"
    if error.validator == "uniqueItems" and isinstance(value, list):
        repeated = json.dumps(_first_repeat(value), ensure_ascii=False, default=str)
        return f"`{repeated}` more than once"
    return shown_value(path, value, lines)


def _value_issue(
    error: jsonschema.ValidationError, schema: Any, path: Path, rel: Path, value: Any, lines: LineMap, wording: Wording
) -> SpecIssue:
    value_text = _shown_for_error(error, path, value, lines)
    # A scalar is reported where it is written; a list or mapping where its key is.
    line = lines.line_of(path) if isinstance(value, (list, dict)) else lines.value_line_of(path)
    override = wording.value(rel, value, value_text)
    if override is not None:
        return SpecIssue(format_path(path), override, line)
    message = f"{rule_text(schema)}; got {value_text}{_type_hint(schema, value, path, lines)}"
    return SpecIssue(format_path(path), message, line)


def _translate(
    error: jsonschema.ValidationError,
    validator: jsonschema.protocols.Validator,
    lines: LineMap,
    prefix: Path,
    base: Path,
    wording: Wording,
) -> list[SpecIssue]:
    """Turn one jsonschema error into issues; `base` is where the validated value sits inside the instance."""
    rel: Path = base + tuple(error.absolute_path)
    path = prefix + rel
    holder = error.instance

    handled = wording.keyword(error, rel)
    if handled is not None:
        return [SpecIssue(format_path(prefix + where), message, lines.line_of(prefix + where)) for where, message in handled]

    if error.validator == "additionalProperties" and isinstance(holder, dict):
        allowed = list(error.schema.get("properties", {}))
        return [
            SpecIssue(format_path(path + (key,)), wording.unknown(rel, key, allowed), lines.line_of(path + (key,)))
            for key in holder
            if key not in allowed
        ]
    if error.validator == "required" and isinstance(holder, dict):
        return [
            SpecIssue(format_path(path + (key,)), wording.missing(rel, key), lines.line_of(path))
            for key in error.validator_value
            if key not in holder
        ]
    if error.validator in ("oneOf", "anyOf") and isinstance(holder, (dict, list)):
        # Report the errors of the one branch whose type fits the value, never a summary of all branches.
        fitting = [
            branch
            for branch in error.validator_value
            if isinstance(branch, dict) and any(_JSON_TYPES[kind](holder) for kind in _expected_types(branch))
        ]
        if len(fitting) == 1:
            branch_validator = validator.evolve(schema=fitting[0])
            issues: list[SpecIssue] = []
            for sub_error in branch_validator.iter_errors(holder):
                issues.extend(_translate(sub_error, branch_validator, lines, prefix, rel, wording))
            if issues:
                return issues
    return [_value_issue(error, error.schema, path, rel, holder, lines, wording)]


def schema_issues(
    validator: jsonschema.protocols.Validator,
    instance: Any,
    lines: LineMap,
    prefix: Path,
    wording: Wording,
) -> list[SpecIssue]:
    """Validate `instance`, which sits at `prefix` in the YAML document, and return one issue per bad field."""
    by_path: dict[str, SpecIssue] = {}
    for error in validator.iter_errors(instance):
        for issue in _translate(error, validator, lines, prefix, (), wording):
            # A value that breaks several keywords (type and range) gets one message: its rule.
            by_path.setdefault(f"{issue.path}\0{issue.message}" if not issue.path else issue.path, issue)
    return list(by_path.values())


def did_you_mean(key: str, allowed: list[str]) -> str:
    """Return "; did you mean `x`?" for a near miss among `allowed`, or ""."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.75)
    return f"; did you mean `{close[0]}`?" if close else ""
