"""Strict YAML loading: 1.2 core scalars, duplicate keys, rejected constructs, limits and line numbers."""

from __future__ import annotations

import pytest

from glpibot.errors import SpecError
from glpibot.spec.yaml_loader import MAX_DEPTH, MAX_NODES, MAX_YAML_BYTES, format_path, load_yaml


def _issues(text: str) -> list[tuple[str, str, int | None]]:
    with pytest.raises(SpecError) as raised:
        load_yaml(text)
    assert raised.value.kind == "invalid"
    return [(issue.path, issue.message, issue.line) for issue in raised.value.issues]


# --- scalars -----------------------------------------------------------------


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n", "Yes", "NO", "On", "OFF", "tRue"])
def test_yaml11_booleans_stay_text(word: str) -> None:
    data, _ = load_yaml(f"value: {word}\nitems: [{word}]\n")
    assert data == {"value": word, "items": [word]}


@pytest.mark.parametrize(("word", "value"), [("true", True), ("True", True), ("TRUE", True), ("false", False), ("False", False), ("FALSE", False)])
def test_core_booleans(word: str, value: bool) -> None:
    data, _ = load_yaml(f"value: {word}\n")
    assert data["value"] is value


def test_yaml11_boolean_keys_stay_distinct() -> None:
    data, _ = load_yaml("true: 1\nfalse: 2\non: 3\noff: 4\nyes: 5\nno: 6\n")
    assert data == {"true": 1, "false": 2, "on": 3, "off": 4, "yes": 5, "no": 6}


@pytest.mark.parametrize("word", ["017", "0o17", "0x1F", "0b101", "1_000", "1:30", "190:20:30", "+0x1F", "00", "017.5"])
def test_non_decimal_numbers_keep_text(word: str) -> None:
    data, _ = load_yaml(f"value: {word}\n")
    assert data["value"] == word


@pytest.mark.parametrize(("word", "value"), [("0", 0), ("17", 17), ("-4", -4), ("+12", 12), ("599", 599)])
def test_decimal_integers(word: str, value: int) -> None:
    data, _ = load_yaml(f"value: {word}\n")
    assert data["value"] == value
    assert type(data["value"]) is int


@pytest.mark.parametrize(("word", "value"), [("1.5", 1.5), ("0.25", 0.25), (".5", 0.5), ("-2e3", -2000.0), ("1E2", 100.0), ("3.", 3.0)])
def test_decimal_floats(word: str, value: float) -> None:
    data, _ = load_yaml(f"value: {word}\n")
    assert data["value"] == value
    assert type(data["value"]) is float


@pytest.mark.parametrize("word", [".inf", "-.inf", ".Inf", ".nan", ".NaN"])
def test_inf_nan_stay_text(word: str) -> None:
    data, _ = load_yaml(f"value: {word}\n")
    assert data["value"] == word


@pytest.mark.parametrize("word", ["2024-06-01", "2024-06-01T10:00:00Z", "2001-12-14 21:59:43.10 -5"])
def test_dates_stay_text(word: str) -> None:
    data, _ = load_yaml(f"value: {word}\n")
    assert data["value"] == word


@pytest.mark.parametrize("word", ["null", "Null", "NULL", "~", ""])
def test_nulls(word: str) -> None:
    data, _ = load_yaml(f"value: {word}\n")
    assert data == {"value": None}


def test_quoted_values_stay_text() -> None:
    data, _ = load_yaml("a: \"200\"\nb: 'true'\nc: \"null\"\n")
    assert data == {"a": "200", "b": "true", "c": "null"}


def test_huge_number_stays_text() -> None:
    data, _ = load_yaml("value: " + "9" * 5000 + "\n")
    assert data["value"] == "9" * 5000


def test_keys_are_text_as_typed() -> None:
    data, _ = load_yaml("200: a\n1.5: b\nnull: c\n~: d\n")
    assert list(data) == ["200", "1.5", "null", "~"]


def test_empty_document_is_none() -> None:
    assert load_yaml("")[0] is None
    assert load_yaml("# only a comment\n")[0] is None


# --- line map ----------------------------------------------------------------


def test_line_map_keys_and_items() -> None:
    text = "glpibot: 1\nsteps:\n  - action: http_check\n    params:\n      url: x\n  - action: path_exists\n"
    _, lines = load_yaml(text)
    assert lines[("glpibot",)] == 1
    assert lines[("steps",)] == 2
    assert lines[("steps", 0)] == 3
    assert lines[("steps", 0, "params", "url")] == 5
    assert lines[("steps", 1)] == 6
    assert lines[("steps", 1, "action")] == 6


def test_line_map_value_lines_and_raw() -> None:
    _, lines = load_yaml('params:\n  expect_status:\n    "200"\n')
    assert lines[("params", "expect_status")] == 2
    assert lines.value_lines[("params", "expect_status")] == 3
    assert lines.raw[("params", "expect_status")] == '"200"'


def test_line_of_falls_back_to_parent() -> None:
    _, lines = load_yaml("a: 1\nparams:\n  b: 2\n")
    assert lines.line_of(("params", "missing")) == 2


def test_format_path() -> None:
    assert format_path(("steps", 3, "params", "expect_status")) == "steps[3].params.expect_status"
    assert format_path(()) == ""


# --- duplicate keys ----------------------------------------------------------


def test_duplicate_keys_case() -> None:
    text = (
        "glpibot: 1\naction: systemd_remote\nhost: host1\nparams:\n  unit: wiki.service\n"
        "  operation: status\n  operation: restart\nreason: look\nhost: host2\n"
    )
    assert _issues(text) == [
        ("params.operation", "duplicate key `operation` at line 7 (first at line 6)", 7),
        ("host", "duplicate key `host` at line 9 (first at line 3)", 9),
    ]


def test_duplicate_keys_in_list_items() -> None:
    text = "steps:\n  - action: a\n    action: b\n  - params:\n      url: x\n      url: y\n"
    assert _issues(text) == [
        ("steps[0].action", "duplicate key `action` at line 3 (first at line 2)", 3),
        ("steps[1].params.url", "duplicate key `url` at line 6 (first at line 5)", 6),
    ]


def test_duplicate_keys_in_flow_mapping() -> None:
    assert _issues("params: {unit: a, unit: b}\n") == [("params.unit", "duplicate key `unit` at line 1 (first at line 1)", 1)]


def test_quoted_duplicate_key() -> None:
    assert _issues("host: a\n'host': b\n") == [("host", "duplicate key `host` at line 2 (first at line 1)", 2)]


def test_yes_and_true_keys_not_duplicates() -> None:
    data, _ = load_yaml("yes: 1\ntrue: 2\n")
    assert data == {"yes": 1, "true": 2}


# --- rejected constructs -----------------------------------------------------


def test_alias_rejected() -> None:
    assert _issues("a: &x wiki.service\nb: *x\n") == [
        ("", "anchors and aliases are not allowed in a spec; write the value out", 1)
    ]


def test_alias_bomb_rejected_fast() -> None:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for index in range(1, 9):
        previous, name = chr(ord("a") + index - 1), chr(ord("a") + index)
        lines.append(f"{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}]")
    issues = _issues("\n".join(lines) + "\n")
    assert issues == [("", "anchors and aliases are not allowed in a spec; write the value out", 1)]


def test_merge_key_rejected() -> None:
    issues = _issues("params:\n  <<: {unit: a}\n  operation: status\n")
    assert issues == [("", "merge keys (`<<`) are not allowed in a spec; write each key out", 2)]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a: !!python/object/apply:os.system ['true']\n", "!!python/object/apply:os.system"),
        ("a: !!str 5\n", "!!str"),
        ("a: !custom x\n", "!custom"),
        ("a: ! x\n", "!"),
        ("a: !!map {b: 1}\n", "!!map"),
    ],
)
def test_tags_rejected(text: str, shown: str) -> None:
    assert _issues(text) == [("", f"YAML tags such as `{shown}` are not allowed in a spec; remove the tag", 1)]


def test_complex_key_rejected() -> None:
    assert _issues("? [a, b]\n: 1\n") == [("", "a mapping key must be a plain name, not a list or a mapping", 1)]


def test_two_documents_rejected() -> None:
    assert _issues("glpibot: 1\n---\nglpibot: 1\n") == [
        ("", "the spec must be a single YAML document; remove the extra `---` line", 2)
    ]


def test_single_document_markers_accepted() -> None:
    data, lines = load_yaml("---\nglpibot: 1\n...\n")
    assert data == {"glpibot": 1}
    assert lines[("glpibot",)] == 2


# --- limits ------------------------------------------------------------------


def test_depth_limit() -> None:
    ok_text = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert load_yaml(ok_text)[0] is not None
    deep_text = "a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n"
    assert _issues(deep_text) == [("", f"the spec nests lists and mappings more than {MAX_DEPTH} levels deep", 1)]


def test_deep_block_nesting() -> None:
    text = "".join("  " * level + f"k{level}:\n" for level in range(MAX_DEPTH + 5))
    issues = _issues(text)
    assert issues[0][1] == f"the spec nests lists and mappings more than {MAX_DEPTH} levels deep"


def test_very_deep_flow_nesting() -> None:
    issues = _issues("a: " + "[" * 20000 + "\n")
    assert issues[0][1] == f"the spec nests lists and mappings more than {MAX_DEPTH} levels deep"


def test_node_limit() -> None:
    text = "a: [" + ", ".join(["1"] * MAX_NODES) + "]\n"
    issues = _issues(text)
    assert issues == [("", f"the spec has more than {MAX_NODES} YAML nodes; a spec is a few lines long", 1)]


def test_size_limit() -> None:
    text = "reason: |\n" + "  x\n" * (MAX_YAML_BYTES // 4 + 1)
    issues = _issues(text)
    assert issues[0][1].endswith(f"the limit is {MAX_YAML_BYTES} bytes (64 KiB); shorten it")


def test_non_text_rejected() -> None:
    with pytest.raises(SpecError) as raised:
        load_yaml(b"a: 1")  # type: ignore[arg-type]
    assert raised.value.issues[0].message == "the spec must be text, not bytes"


# --- syntax errors -----------------------------------------------------------


def test_tab_indentation_message() -> None:
    assert _issues("params:\n\tunit: a\n") == [
        ("", "invalid YAML: tabs are not allowed for indentation; indent with spaces", 2)
    ]


def test_tab_after_spaces_message() -> None:
    assert _issues("params:\n  unit: a\n  \toperation: b\n") == [
        ("", "invalid YAML: tabs are not allowed for indentation; indent with spaces", 3)
    ]


def test_tab_separator_message() -> None:
    assert _issues("unit:\twiki.service\n") == [("", "invalid YAML: a tab is not allowed here; use spaces", 1)]


def test_syntax_error_one_line() -> None:
    issues = _issues("glpibot: 1\nreason: a: b\n")
    assert issues == [("", "invalid YAML: mapping values are not allowed here", 2)]


def test_syntax_error_with_context() -> None:
    issues = _issues("glpibot: 1\nsteps:\n  - action: x\n bad\n")
    path, message, line = issues[0]
    assert message.startswith("invalid YAML: ")
    assert "\n" not in message
    assert line == 4


def test_unclosed_flow_message() -> None:
    path, message, line = _issues("params: {unit: a\n")[0]
    assert message.startswith("invalid YAML: ")
    assert line == 2


def test_control_character_rejected() -> None:
    assert _issues("a: 1\nb: x\x07y\n") == [("", "invalid YAML: the character U+0007 is not allowed; remove it", 2)]
