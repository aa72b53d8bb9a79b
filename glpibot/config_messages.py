"""One-line messages for config problems: key path, YAML line, the rule in plain words, the value as typed.

jsonschema's own messages print Python reprs and raw regular expressions,
so every schema error is reworded here. The rule comes from the schema's
`x-message` when it has one, else from its keywords (`spec.messages.rule_text`).
Unknown keys get a "did you mean" hint, and keys that look like secrets name
the environment variable and credential file to use instead. The value of
such a key is never shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema

from glpibot.credentials import GLPI_CLIENT_SECRET, GLPI_PASSWORD, MEMORY_TOKEN, SSH_KEY_PASSPHRASE, SecretSource
from glpibot.errors import SpecError
from glpibot.redact import register_secret
from glpibot.resources import load_schema
from glpibot.spec.messages import did_you_mean, rule_text
from glpibot.spec.strict_schema import StrictValidator
from glpibot.spec.yaml_loader import LineMap, Path, format_path, printable

_SHOWN_VALUE_LIMIT = 80
_SECTIONS = ("glpi", "artifacts", "memory", "actions")  # sections with a fixed set of keys

# Secret names a new user may type, by the section they are typed in ("" is
# the top level). Names are lower-case, with `-` written as `_`.
_SECRET_KEYS: dict[tuple[str, str], SecretSource] = {
    **{("glpi", name): GLPI_PASSWORD for name in ("password", "passwd", "pass", "user_password")},
    **{("glpi", name): GLPI_CLIENT_SECRET for name in ("client_secret", "secret", "oauth_secret")},
    **{("memory", name): MEMORY_TOKEN for name in ("token", "bearer_token", "auth_token", "api_token", "api_key")},
    **{("hosts", name): SSH_KEY_PASSPHRASE for name in ("passphrase", "key_passphrase", "ssh_key_passphrase")},
    **{("", name): GLPI_PASSWORD for name in ("password", "glpi_password")},
    **{("", name): GLPI_CLIENT_SECRET for name in ("client_secret", "glpi_client_secret")},
    **{("", name): MEMORY_TOKEN for name in ("token", "memory_token")},
    **{("", name): SSH_KEY_PASSPHRASE for name in ("passphrase", "ssh_key_passphrase")},
}
_SECRET_WORDS = ("password", "passwd", "secret", "token", "passphrase", "api_key", "apikey")
_ALL_SECRETS = (GLPI_CLIENT_SECRET, GLPI_PASSWORD, MEMORY_TOKEN, SSH_KEY_PASSPHRASE)
_URL_PASSWORD = re.compile(r"(://[^/@\s:]*):[^/@\s]*@")
_DUPLICATE = re.compile(r"^duplicate key `.*` at line (\d+) \(first at line (\d+)\)$")
_TAB_INDENT = "tabs are not allowed for indentation"


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in the config: its key path (`glpi.url`, "" for the file), 1-based YAML line and message.

    `unknown_key` problems read "unknown key <path> (line N); ...", every
    other one "<path> (line N): ...".
    """

    path: str
    message: str
    line: int | None = None
    unknown_key: bool = False

    def __str__(self) -> str:
        line = f" (line {self.line})" if self.line is not None else ""
        if self.unknown_key:
            return f"unknown key {self.path}{line}; {self.message}"
        if not self.path:
            return f"line {self.line}: {self.message}" if self.line is not None else self.message
        return f"{self.path}{line}: {self.message}"

    def sort_key(self) -> tuple[int, str]:
        return (self.line or 0, self.path)


@lru_cache(maxsize=1)
def config_validator() -> jsonschema.protocols.Validator:
    """Return the validator of schemas/config.schema.json, built once."""
    return StrictValidator(load_schema("config.schema.json"))


def show_value(value: Any, raw: str | None, expected: set[str]) -> str:
    """Return the value as the user typed it, for the end of a message ("got ...").

    Text is quoted as typed, or in single quotes when typed bare. It is marked
    "(text)" when the rule expects another type. A password inside a URL is masked.
    """
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        if not value:
            return "an empty list"
        return "a list of 1 item" if len(value) == 1 else f"a list of {len(value)} items"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        return printable(raw) if raw else str(value)

    quoted = raw is not None and raw[:1] in ("'", '"')
    text = printable(_URL_PASSWORD.sub(r"\1:***@", raw if quoted and raw else f"'{value}'"))
    if len(text) > _SHOWN_VALUE_LIMIT:
        text = text[: _SHOWN_VALUE_LIMIT - 4] + "...'"
    if expected and "string" not in expected:
        text += " (text)"
        if quoted and _typed_without_quotes(value) & expected:
            text += "; remove the quotes"
    return text


def _typed_without_quotes(value: str) -> set[str]:
    """Return the JSON types `value` would have if it were typed without quotes."""
    if value in ("true", "false"):
        return {"boolean"}
    if re.fullmatch(r"[-+]?[0-9]+", value):
        return {"integer", "number"}
    if re.fullmatch(r"[-+]?[0-9]*\.[0-9]+", value):
        return {"number"}
    return set()


def _expected_types(schema: Any) -> set[str]:
    if not isinstance(schema, dict):
        return set()
    kinds = {schema["type"]} if isinstance(schema.get("type"), str) else set()
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        kinds |= _expected_types(branch)
    return kinds


def secret_hint(section: str, key: str) -> str | None:
    """Return the message for a key named like a secret, or None when the name does not look like one."""
    name = key.lower().replace("-", "_")
    source = _SECRET_KEYS.get((section, name))
    if source is not None:
        return (
            f"secrets are not read from the config file; set {source.env_var} or the credential file "
            f"{source.credential}, and delete this key"
        )
    if any(word in name for word in _SECRET_WORDS):
        choices = ", ".join(f"{source.env_var} or {source.credential}" for source in _ALL_SECRETS)
        return (
            "secrets are not read from the config file; set the environment variable or credential file "
            f"of the secret ({choices}), and delete this key"
        )
    return None


def _misplaced_hint(rel: Path, key: str) -> str:
    """Return "; `key` belongs in X, ..." when `key` is a valid key of another section, else ""."""
    properties = config_validator().schema["properties"]
    homes = []
    if rel and key in properties:
        homes.append("at the top level")
    for section in _SECTIONS:
        if (section,) != rel and key in properties[section].get("properties", {}):
            homes.append(f"in {section}")
    host_keys = properties["hosts"]["additionalProperties"]["properties"]
    if not (len(rel) == 2 and rel[0] == "hosts") and key in host_keys:
        homes.append("in each host under hosts")
    if not homes:
        return ""
    return f"; `{key}` belongs {' or '.join(homes)}, so check its indentation"


def _unknown_key(rel: Path, key: str, value: Any, allowed: list[str], lines: LineMap) -> ConfigProblem:
    path = rel + (key,)
    section = str(rel[0]) if rel else ""
    hint = secret_hint(section, key)
    if hint is not None:
        if isinstance(value, str):
            register_secret(value)
        return ConfigProblem(format_path(path), hint, lines.line_of(path), unknown_key=True)

    where = f"in {format_path(rel)}" if rel else "at the top level"
    message = f"allowed {where}: {', '.join(allowed)}{did_you_mean(key, allowed)}{_misplaced_hint(rel, key)}"
    return ConfigProblem(format_path(path), message, lines.line_of(path), unknown_key=True)


def _missing_key(rel: Path, key: str, lines: LineMap) -> ConfigProblem:
    if not rel and key == "glpi":
        return ConfigProblem("glpi", "missing; add a glpi section with url, client_id, username and category")
    return ConfigProblem(format_path(rel), f"missing required key {key}", lines.line_of(rel))


def _translate(error: jsonschema.ValidationError, lines: LineMap) -> list[ConfigProblem]:
    rel: Path = tuple(error.absolute_path)
    instance = error.instance

    if "propertyNames" in error.absolute_schema_path and isinstance(instance, str):
        path = rel + (instance,)
        message = f"{rule_text(error.schema)}; got {show_value(instance, None, {'string'})}"
        return [ConfigProblem(format_path(path), message, lines.line_of(path))]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = list(error.schema.get("properties", {}))
        return [_unknown_key(rel, key, item, allowed, lines) for key, item in instance.items() if key not in allowed]
    if error.validator == "required" and isinstance(instance, dict):
        return [_missing_key(rel, key, lines) for key in error.validator_value if key not in instance]

    # A scalar is reported where it is written, a list or mapping where its key is.
    line = lines.line_of(rel) if isinstance(instance, (list, dict)) else lines.value_line_of(rel)
    schema = error.schema
    if error.validator == "uniqueItems" and isinstance(instance, list):
        repeated = next(item for index, item in enumerate(instance) if item in instance[:index])
        value_text = f"{show_value(repeated, None, set())} more than once"
    else:
        value_text = show_value(instance, lines.raw.get(rel), _expected_types(schema))
    if error.validator == "enum" and isinstance(instance, str):
        value_text += did_you_mean(instance, [str(choice) for choice in error.validator_value])
    return [ConfigProblem(format_path(rel), f"{rule_text(schema)}; got {value_text}", line)]


def schema_problems(data: Any, lines: LineMap) -> list[ConfigProblem]:
    """Validate a config mapping against the schema; return one problem per key path."""
    by_path: dict[str, ConfigProblem] = {}
    for error in config_validator().iter_errors(data):
        for problem in _translate(error, lines):
            # A value that breaks several rules gets one message; a missing key is its own entry.
            by_path.setdefault(f"{problem.path}\0{problem.message}" if problem.message.startswith("missing") else problem.path, problem)
    return list(by_path.values())


def yaml_problems(error: SpecError, text: str) -> list[ConfigProblem]:
    """Reword the issues of the strict YAML loader for a config file.

    The loader words its messages for a ticket's spec, so "spec" becomes
    "config file", and a repeated key names both lines. After a tab in the
    indentation the parser stops, so every other line indented with a tab is
    listed too.
    """
    problems = []
    for issue in error.issues:
        message = issue.message.replace("; a spec is a few lines long", "")
        message = message.replace(" in a spec", " in the config file").replace("the spec ", "the config file ")
        message = message.replace("the YAML spec ", "the config file ")
        duplicate = _DUPLICATE.match(message)
        if duplicate:
            message = f"duplicate key, first set at line {duplicate.group(2)}; a key may appear only once, so delete one of them"
        problems.append(ConfigProblem(issue.path, message, issue.line))

    if any(_TAB_INDENT in problem.message for problem in problems):
        reported = {problem.line for problem in problems}
        for number, line_text in enumerate(text.split("\n"), 1):
            indentation = line_text[: len(line_text) - len(line_text.lstrip(" \t"))]
            if "\t" in indentation and line_text.strip() and number not in reported:
                problems.append(ConfigProblem("", f"invalid YAML: {_TAB_INDENT}; indent with spaces", number))
    return sorted(problems, key=ConfigProblem.sort_key)
