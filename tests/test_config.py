"""Config loading: strict YAML, one message per problem with key path and line, the GLPI URL, category ids, secrets."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from glpibot.config import MAX_CONFIG_BYTES, config_from_dict, load_config, validate_config_data
from glpibot.errors import ConfigError, SpecError
from glpibot.redact import MASK, forget_secrets, redact
from glpibot.spec.yaml_loader import MAX_YAML_BYTES, load_yaml

VALID = """\
glpi:
  url: https://glpi.example.org
  client_id: bot-client
  username: homelab-bot
  category: "Automation > Homelab Bot"
state_dir: /var/lib/glpibot
artifacts:
  dir: /srv/docs
  git_commit: false
memory:
  sink: jsonl
"""

GLPI = {"url": "https://glpi.example.org", "client_id": "bot-client", "username": "homelab-bot", "category": 2}


@pytest.fixture(autouse=True)
def _no_registered_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    """Load `text` as a config file that must be invalid; return its problem lines."""
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text))
    header, *lines = str(raised.value).split("\n")
    assert header.startswith(f"config file {tmp_path / 'config.yaml'} is invalid (")
    assert all(line.startswith("  ") for line in lines)
    return [line.strip() for line in lines]


def with_glpi(glpi_lines: str, rest: str = "") -> str:
    """Return a config whose glpi section contains the valid keys plus `glpi_lines` (indented by two spaces)."""
    return (
        "glpi:\n  url: https://glpi.example.org\n  client_id: bot-client\n  username: homelab-bot\n"
        f"  category: 2\n{glpi_lines}{rest}"
    )


# --- strict YAML -------------------------------------------------------------


def test_valid_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))

    assert config.glpi.url == "https://glpi.example.org"
    assert config.glpi.category == "Automation > Homelab Bot"
    assert config.state_dir == Path("/var/lib/glpibot")
    assert config.artifacts.git_commit is False
    assert config.memory.path == Path("/var/lib/glpibot/memory.jsonl")


def test_duplicate_key_rejected(tmp_path: Path) -> None:
    lines = problems(tmp_path, VALID + "state_dir: /tmp/elsewhere\n")

    assert len(lines) == 1
    assert lines[0].startswith("state_dir (line 12): duplicate key, first set at line 6")


def test_duplicate_keys_all_listed(tmp_path: Path) -> None:
    text = with_glpi("  username: other\n", "memory:\n  sink: none\n  sink: jsonl\n")

    lines = problems(tmp_path, text)

    assert len(lines) == 2
    assert lines[0].startswith("glpi.username (line 6): duplicate key, first set at line 4")
    assert lines[1].startswith("memory.sink (line 9): duplicate key, first set at line 8")


@pytest.mark.parametrize("word", ["off", "on", "yes", "no", "OFF", "y"])
def test_yaml11_boolean_is_text(tmp_path: Path, word: str) -> None:
    text = VALID.replace("git_commit: false", f"git_commit: {word}")

    lines = problems(tmp_path, text)

    assert lines == [f"artifacts.git_commit (line 9): must be true or false; got '{word}' (text)"]


def test_quoted_boolean_is_text(tmp_path: Path) -> None:
    text = VALID.replace("git_commit: false", 'git_commit: "true"')

    lines = problems(tmp_path, text)

    assert len(lines) == 1
    assert lines[0].startswith('artifacts.git_commit (line 9): must be true or false; got "true" (text)')


def test_core_booleans_accepted(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID.replace("git_commit: false", "git_commit: True")))

    assert config.artifacts.git_commit is True


def test_quoted_number_hint(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_glpi('  timeout_s: "10"\n'))

    assert lines == ['glpi.timeout_s (line 6): must be a number greater than 0 and at most 300; got "10" (text); remove the quotes']


def test_alias_rejected(tmp_path: Path) -> None:
    text = with_glpi("", "state_dir: &dir /srv/state\ntemplates_dir: *dir\n")

    lines = problems(tmp_path, text)

    assert lines == ["line 6: anchors and aliases are not allowed in the config file; write the value out"]


def test_tag_rejected(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_glpi("", "state_dir: !!str /srv/state\n"))

    assert lines == ["line 6: YAML tags such as `!!str` are not allowed in the config file; remove the tag"]


def test_tab_indentation_every_line(tmp_path: Path) -> None:
    text = "glpi:\n\turl: https://glpi.example.org\n\tclient_id: bot-client\n  username: homelab-bot\n"

    lines = problems(tmp_path, text)

    assert lines == [
        "line 2: invalid YAML: tabs are not allowed for indentation; indent with spaces",
        "line 3: invalid YAML: tabs are not allowed for indentation; indent with spaces",
    ]


def test_tab_after_colon(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_glpi("", "state_dir:\t/srv/state\n"))

    assert lines == ["line 6: invalid YAML: a tab is not allowed here; use spaces"]


def test_second_document_rejected(tmp_path: Path) -> None:
    lines = problems(tmp_path, VALID + "---\nglpi: {}\n")

    assert lines == ["line 12: the config file must be a single YAML document; remove the extra `---` line"]


def test_invalid_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(VALID.encode() + b"templates_dir: /srv/t\xe9\n")

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert str(raised.value) == f"config file {path} is not valid UTF-8 (line 12); save it as UTF-8"


def test_byte_order_mark_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())

    assert load_config(path).glpi.username == "homelab-bot"


def test_empty_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must hold a YAML mapping with at least a 'glpi' section"):
        load_config(write(tmp_path, "# nothing yet\n"))


def test_missing_file_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="absent.yaml not found; pass --config PATH or set GLPIBOT_CONFIG"):
        load_config(tmp_path / "absent.yaml")


# --- size limits -------------------------------------------------------------


def test_config_larger_than_spec_limit(tmp_path: Path) -> None:
    urls = "".join(f"      - https://service-{index:05d}.home.arpa/health/*\n" for index in range(2000))
    text = VALID + "actions:\n  http_check:\n    allowed_urls:\n" + urls
    assert MAX_YAML_BYTES < len(text.encode()) < MAX_CONFIG_BYTES

    config = load_config(write(tmp_path, text))

    assert len(config.action_settings("http_check")["allowed_urls"]) == 2000


def test_config_over_limit_rejected(tmp_path: Path) -> None:
    text = VALID + "# " + "x" * MAX_CONFIG_BYTES + "\n"

    with pytest.raises(ConfigError, match=f"is larger than {MAX_CONFIG_BYTES} bytes"):
        load_config(write(tmp_path, text))


def test_loader_size_parameter() -> None:
    text = "key: " + "x" * 100 + "\n"

    with pytest.raises(SpecError) as raised:
        load_yaml(text, max_bytes=50)

    assert raised.value.issues[0].message == "the YAML spec is 106 bytes; the limit is 50 bytes; shorten it"


def test_loader_default_limit_unchanged() -> None:
    text = "key: " + "x" * MAX_YAML_BYTES + "\n"

    with pytest.raises(SpecError) as raised:
        load_yaml(text)

    assert raised.value.issues[0].message.endswith(f"the limit is {MAX_YAML_BYTES} bytes (64 KiB); shorten it")


# --- messages ----------------------------------------------------------------


def test_url_message_plain(tmp_path: Path) -> None:
    text = "glpi:\n  url: 127.0.0.1:8088\n  client_id: bot-client\n  username: homelab-bot\n  category: 2\n"

    lines = problems(tmp_path, text)

    assert lines == [
        "glpi.url (line 2): must be GLPI's root URL starting with http:// or https://, "
        "for example https://glpi.example.org; got '127.0.0.1:8088'"
    ]


def test_url_password_masked(tmp_path: Path) -> None:
    text = "glpi:\n  url: ftp://bot:hunter2@glpi.lan\n  client_id: bot-client\n  username: homelab-bot\n  category: 2\n"

    lines = problems(tmp_path, text)

    assert len(lines) == 1
    assert "hunter2" not in lines[0]
    assert lines[0].endswith("got 'ftp://bot:***@glpi.lan'")


def test_unknown_key_did_you_mean(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_glpi("  verfy_tls: true\n"))

    assert len(lines) == 1
    assert lines[0].startswith("unknown key glpi.verfy_tls (line 6); allowed in glpi: url, client_id, username,")
    assert lines[0].endswith("did you mean `verify_tls`?")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    lines = problems(tmp_path, VALID + "stat_dir: /srv/state\n")

    assert len(lines) == 1
    assert lines[0].startswith("unknown key stat_dir (line 12); allowed at the top level: glpi, state_dir,")
    assert lines[0].endswith("did you mean `state_dir`?")


def test_misplaced_key_hint(tmp_path: Path) -> None:
    lines = problems(tmp_path, VALID + "verify_tls: false\n")

    assert len(lines) == 1
    assert lines[0].endswith("`verify_tls` belongs in glpi, so check its indentation")


def test_indented_top_level_key(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_glpi("  state_dir: /srv/state\n"))

    assert len(lines) == 1
    assert lines[0].startswith("unknown key glpi.state_dir (line 6); allowed in glpi:")
    assert lines[0].endswith("`state_dir` belongs at the top level, so check its indentation")


def test_choice_did_you_mean(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_glpi("", "memory:\n  sink: jsonI\n"))

    assert lines == ["memory.sink (line 7): must be one of: none, jsonl, http; got 'jsonI'; did you mean `jsonl`?"]


def test_missing_key_names_section(tmp_path: Path) -> None:
    text = "glpi:\n  url: https://glpi.example.org\n  username: homelab-bot\n  category: 2\n"

    lines = problems(tmp_path, text)

    assert lines == ["glpi (line 1): missing required key client_id"]


def test_missing_glpi_section(tmp_path: Path) -> None:
    lines = problems(tmp_path, "state_dir: /srv/state\n")

    assert lines == ["glpi: missing; add a glpi section with url, client_id, username and category"]


def test_every_problem_has_line(tmp_path: Path) -> None:
    text = with_glpi(
        "  eligible_statuses: [1, 7, 1]\n  colour: red\n",
        "pass_timeout_s: -1\n"
        "hosts:\n  nas:\n    address: nas.lan\n    user: bot\n    known_hosts: /k\n    port: 70000\n    sudo: yes\n"
        "artifacts:\n  git_commit: true\n"
        "memory:\n  sink: s3\n",
    )

    lines = problems(tmp_path, text)

    assert len(lines) == 8
    for line in lines:
        assert re.search(r"\(line \d+\)", line), line
    for raw in ("is not of type", "does not match", "is not one of", "'type'", "^", "\\s", "{'"):
        assert not any(raw in line for line in lines), raw


def test_messages_plain_words(tmp_path: Path) -> None:
    text = with_glpi(
        "  eligible_statuses: [1, 7]\n",
        "hosts:\n  nas:\n    address: bot@nas.lan\n    user: -bot\n    known_hosts: /k\n    port: 70000\n"
        "memory:\n  sink: s3\n  url: brain.lan\n",
    )

    lines = problems(tmp_path, text)

    assert lines == [
        "glpi.eligible_statuses[1] (line 6): must be a GLPI status number: 1 (new), 2 (assigned), 3 (planned) or 4 (pending); got 7",
        "hosts.nas.address (line 9): must be a host name or IP address made of letters, digits, _, ., : and - only; "
        "the login goes in user and the port in port; got 'bot@nas.lan'",
        "hosts.nas.user (line 10): must be a login name of letters, digits, _, . and -, not starting with . or -; got '-bot'",
        "hosts.nas.port (line 12): must be an integer from 1 to 65535; got 70000",
        "memory.sink (line 14): must be one of: none, jsonl, http; got 's3'",
        "memory.url (line 15): must be the memory service's URL starting with http:// or https://; got 'brain.lan'",
    ]


def test_host_name_rule(tmp_path: Path) -> None:
    text = with_glpi("", "hosts:\n  -nas:\n    address: nas.lan\n    user: bot\n    known_hosts: /k\n")

    lines = problems(tmp_path, text)

    assert lines == [
        "hosts.-nas (line 7): a host name must start with a letter or digit and contain only letters, digits, _, . and -, "
        "at most 63 characters; got '-nas'"
    ]


def test_repeated_status_named(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_glpi("  eligible_statuses: [1, 2, 1]\n"))

    assert lines == ["glpi.eligible_statuses (line 6): must be a list of GLPI status numbers from 1 to 4, each at most once; got 1 more than once"]


def test_memory_http_needs_url(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_glpi("", "memory:\n  sink: http\n"))

    assert lines == ["memory (line 6): missing required key url, which memory.sink: http needs; set it to the memory service's URL"]


def test_unknown_allowlist_host(tmp_path: Path) -> None:
    text = with_glpi(
        "",
        "hosts:\n  nas1:\n    address: nas.lan\n    user: bot\n    known_hosts: /k\n"
        "actions:\n  systemd_remote:\n    allowed_units:\n      nas2: [nginx.service]\n"
        "  docker_compose_remote:\n    projects:\n      wiki: {host: web, path: /srv/wiki}\n",
    )

    lines = problems(tmp_path, text)

    assert lines == [
        "actions.systemd_remote.allowed_units.nas2 (line 14): names host nas2, which is not defined under hosts; "
        "add it there or fix the name; did you mean `nas1`?",
        "actions.docker_compose_remote.projects.wiki.host (line 17): names host web, which is not defined under hosts; "
        "add it there or fix the name",
    ]


def test_dict_problems_without_lines() -> None:
    lines = validate_config_data({"glpi": {**GLPI, "url": "glpi.lan", "colour": "red"}})

    assert lines == [
        "unknown key glpi.colour; allowed in glpi: url, client_id, username, category, eligible_statuses, verify_tls, timeout_s",
        "glpi.url: must be GLPI's root URL starting with http:// or https://, for example https://glpi.example.org; got 'glpi.lan'",
    ]


def test_dict_error_header() -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_dict({"glpi": {**GLPI, "timeout_s": 0}})

    assert str(raised.value) == "config is invalid (1 problem):\n  glpi.timeout_s: must be a number greater than 0 and at most 300; got 0"


# --- glpi.url and glpi.category ------------------------------------------------


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("https://glpi.example.org/api.php", "https://glpi.example.org"),
        ("https://glpi.example.org/api.php/", "https://glpi.example.org"),
        ("https://glpi.example.org/api.php/v2", "https://glpi.example.org"),
        ("https://glpi.example.org/api.php/v2.1/Assistance/Ticket", "https://glpi.example.org"),
        ("http://127.0.0.1:8088/glpi/api.php/v2", "http://127.0.0.1:8088/glpi"),
    ],
)
def test_url_with_api_php(tmp_path: Path, url: str, root: str) -> None:
    text = f"glpi:\n  url: {url}\n  client_id: bot-client\n  username: homelab-bot\n  category: 2\n"

    lines = problems(tmp_path, text)

    assert lines == [f"glpi.url (line 2): glpi.url is GLPI's root URL; remove /api.php (glpibot adds it); use {root}"]


def test_url_with_legacy_api(tmp_path: Path) -> None:
    text = "glpi:\n  url: https://glpi.example.org/apirest.php\n  client_id: bot-client\n  username: homelab-bot\n  category: 2\n"

    lines = problems(tmp_path, text)

    assert len(lines) == 1
    assert lines[0].startswith("glpi.url (line 2): glpi.url is GLPI's root URL; remove /apirest.php")


@pytest.mark.parametrize("url", ["https://glpi.example.org/", "https://glpi.example.org/helpdesk", "https://glpi.example.org/api.php.old"])
def test_url_root_accepted(url: str) -> None:
    config = config_from_dict({"glpi": {**GLPI, "url": url}})

    assert config.glpi.api_url == url.rstrip("/") + "/api.php"


@pytest.mark.parametrize(("typed", "category"), [('"2"', 2), ("'17'", 17), ("2", 2), ('"Automation > Homelab Bot"', "Automation > Homelab Bot"), ('"2 > Ops"', "2 > Ops")])
def test_category_digits_are_id(tmp_path: Path, typed: str, category: str | int) -> None:
    text = f"glpi:\n  url: https://glpi.example.org\n  client_id: bot-client\n  username: homelab-bot\n  category: {typed}\n"

    config = load_config(write(tmp_path, text))

    assert config.glpi.category == category


def test_category_zero_rejected(tmp_path: Path) -> None:
    text = "glpi:\n  url: https://glpi.example.org\n  client_id: bot-client\n  username: homelab-bot\n  category: \"0\"\n"

    lines = problems(tmp_path, text)

    assert lines == ['glpi.category (line 5): a category id starts at 1; got "0"']


def test_category_rule_plain(tmp_path: Path) -> None:
    text = "glpi:\n  url: https://glpi.example.org\n  client_id: bot-client\n  username: homelab-bot\n  category: [2]\n"

    lines = problems(tmp_path, text)

    assert len(lines) == 1
    assert lines[0].startswith("glpi.category (line 5): must be the ITIL category's complete name")
    assert lines[0].endswith("or its id, a whole number from 1; got a list of 1 item")


# --- secrets -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "variable", "credential"),
    [
        ("glpi", "password", "GLPIBOT_GLPI_PASSWORD", "glpi-password"),
        ("glpi", "client_secret", "GLPIBOT_GLPI_CLIENT_SECRET", "glpi-client-secret"),
        ("glpi", "client-secret", "GLPIBOT_GLPI_CLIENT_SECRET", "glpi-client-secret"),
        ("memory", "token", "GLPIBOT_MEMORY_TOKEN", "memory-token"),
        ("", "password", "GLPIBOT_GLPI_PASSWORD", "glpi-password"),
    ],
)
def test_secret_key_names_source(tmp_path: Path, section: str, key: str, variable: str, credential: str) -> None:
    secret = "Sup3r-Secret-Value"
    if section == "glpi":
        text = with_glpi(f"  {key}: {secret}\n")
    else:
        text = with_glpi("", f"{section}:\n  {key}: {secret}\n" if section else f"{key}: {secret}\n")
    dotted = f"{section}.{key}" if section else key

    lines = problems(tmp_path, text)

    assert len(lines) == 1
    assert lines[0].startswith(f"unknown key {dotted} (line ")
    assert f"secrets are not read from the config file; set {variable} or the credential file {credential}" in lines[0]
    assert secret not in lines[0]
    assert redact(f"value {secret}") == f"value {MASK}"


def test_host_passphrase_key(tmp_path: Path) -> None:
    text = with_glpi("", "hosts:\n  nas:\n    address: nas.lan\n    user: bot\n    known_hosts: /k\n    passphrase: Open-Sesame-1\n")

    lines = problems(tmp_path, text)

    assert len(lines) == 1
    assert "set GLPIBOT_SSH_KEY_PASSPHRASE or the credential file ssh-key-passphrase" in lines[0]
    assert "Open-Sesame-1" not in lines[0]


def test_other_secret_name(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_glpi("  api_token: Tok-Value-123\n"))

    assert len(lines) == 1
    assert lines[0].startswith("unknown key glpi.api_token (line 6); secrets are not read from the config file")
    assert "GLPIBOT_GLPI_PASSWORD or glpi-password" in lines[0]
    assert "Tok-Value-123" not in lines[0]


def test_secret_beside_other_problems(tmp_path: Path) -> None:
    text = with_glpi("  password: 'hunter2: x'\n  verify_tls: no\n")

    lines = problems(tmp_path, text)

    assert len(lines) == 2
    assert "hunter2" not in "\n".join(lines)
    assert lines[1] == "glpi.verify_tls (line 7): must be true or false; got 'no' (text)"


# --- command line ------------------------------------------------------------


def test_cli_prints_each_problem(tmp_path: Path) -> None:
    text = with_glpi("  password: Hunter-Two-22\n", "state_dir: /a\nstate_dir: /b\n")
    path = write(tmp_path, text)

    result = subprocess.run(
        [sys.executable, "-m", "glpibot", "poll", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert f"config file {path} is invalid (1 problem):" in result.stderr
    assert "  state_dir (line 8): duplicate key, first set at line 7" in result.stderr
    assert "Hunter-Two-22" not in result.stderr
