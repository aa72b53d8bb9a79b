"""Cases about the YAML text and its bytes: alias bombs, nesting, size, encoding, BOM, tabs, line ends, NBSP, duplicates, YAML 1.1 types."""

from __future__ import annotations

from collections.abc import Iterator

from hostile_model import HOST, Case, compose, container, editor_body, http, quote, spec, unit

ALIASES = "anchors and aliases are not allowed in a spec"
TOO_DEEP = "the spec nests lists and mappings more than 20 levels deep"
UNIT_RULE = "must be a full unit name"
FFFD = "contains U+FFFD, the replacement character"
BODY_LIMIT = 256 * 1024


def _laughs(flow: bool) -> str:
    names = "abcdefghi"
    if flow:
        entries = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
        entries += [f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]" for prev, name in zip(names, names[1:])]
        return "lol: {" + ", ".join(entries) + "}\n"
    lines = ['  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  {name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]" for prev, name in zip(names, names[1:])]
    return "lol:\n" + "\n".join(lines) + "\n"


def alias_bombs() -> Iterator[Case]:
    tail = "action: http_check\nparams:\n  url: http://127.0.0.1:8080/health\n"
    yield Case("billion-laughs", "alias_bomb", "spec", "glpibot: 1\n" + _laughs(False) + tail, "invalid", "", ALIASES)
    yield Case("billion-laughs-flow", "alias_bomb", "spec", "glpibot: 1\n" + _laughs(True) + tail, "invalid", "", ALIASES)
    body = "<p>Please check</p><pre>glpibot: 1\n" + _laughs(False) + tail + "</pre>"
    yield Case("billion-laughs-body", "alias_bomb", "body", body, "invalid", "", ALIASES, pass_slice=True)
    yield Case("anchor-without-alias", "alias_bomb", "spec",
               'glpibot: 1\naction: http_check\nparams:\n  url: &u "http://127.0.0.1:8080/health"\n', "invalid", "", ALIASES)
    yield Case("alias-undefined", "alias_bomb", "spec",
               "glpibot: 1\naction: http_check\nparams:\n  url: *nowhere\n", "invalid", "", ALIASES)
    merge = "glpibot: 1\nbase: &base {url: http://127.0.0.1:8080/health}\naction: http_check\nparams:\n  <<: *base\n"
    yield Case("merge-of-alias", "alias_bomb", "spec", merge, "invalid", "", ALIASES)
    yield Case("alias-as-key", "alias_bomb", "spec",
               "glpibot: &v 1\n*v : x\naction: http_check\nparams:\n  url: http://127.0.0.1:8080/health\n",
               "invalid", "", ALIASES)
    quadratic = "glpibot: 1\nreason: &r \"" + "A" * 20000 + "\"\nsteps: [" + ", ".join(["{action: *r}"] * 500) + "]\n"
    yield Case("quadratic-blowup", "alias_bomb", "spec", quadratic, "invalid", "", ALIASES)
    fenced = "<p>```yaml</p><p>glpibot: 1<br>" + _laughs(True) + "action: http_check</p><p>```</p>"
    yield Case("billion-laughs-fenced", "alias_bomb", "body", fenced, "invalid", "", ALIASES)


def deep_nesting() -> Iterator[Case]:
    def status(value: str) -> str:
        return http(expect_status=value)

    yield Case("flow-list-30", "deep_nesting", "spec", status("[" * 30 + "200" + "]" * 30), "invalid", "", TOO_DEEP)
    yield Case("flow-list-unclosed", "deep_nesting", "spec", status("[" * 60000), "invalid", "", TOO_DEEP)
    yield Case("flow-map-30", "deep_nesting", "spec", status("{a: " * 30 + "1" + "}" * 30), "invalid", "", TOO_DEEP)
    block_map = "glpibot: 1\naction: http_check\nparams:\n" + "".join("  " * depth + "k:\n" for depth in range(1, 31))
    yield Case("block-map-30", "deep_nesting", "spec", block_map + "  " * 31 + "v: 1\n", "invalid", "", TOO_DEEP)
    block_seq = "glpibot: 1\naction: http_check\nparams:\n  expect_status:\n    " + "- " * 30 + "200\n"
    yield Case("block-seq-30", "deep_nesting", "spec", block_seq, "invalid", "", TOO_DEEP)
    yield Case("mixed-30", "deep_nesting", "spec", status("[{a: " * 15 + "1" + "}]" * 15), "invalid", "", TOO_DEEP)
    body = editor_body(status("[" * 40 + "200" + "]" * 40))
    yield Case("flow-list-body", "deep_nesting", "body", body, "invalid", "", TOO_DEEP, pass_slice=True)
    many = status("[" + ", ".join(["200"] * 10001) + "]")
    yield Case("nodes-over-limit", "deep_nesting", "spec", many, "invalid", "", "more than 10000 YAML nodes")
    yield Case("depth-20-allowed", "deep_nesting", "spec", status("[" * 18 + "200" + "]" * 18), "invalid",
               "params.expect_status[0]", "must be an integer from 100 to 599",
               note="20 levels is the limit, so the loader passes it and the schema names the field")
    yield Case("depth-21", "deep_nesting", "spec", status("[" * 19 + "200" + "]" * 19), "invalid", "", TOO_DEEP)


def _padded(prefix: str, suffix: str, total: int, filler: str = "A") -> str:
    """Return prefix + filler + suffix with exactly `total` UTF-8 bytes (filler is one byte wide)."""
    size = len((prefix + suffix).encode("utf-8"))
    return prefix + filler * (total - size) + suffix


def huge_bodies() -> Iterator[Case]:
    over = "the limit is 262144 bytes (256 KiB)"
    yield Case("body-over-limit", "huge_body", "body", _padded("<p>", "</p>", BODY_LIMIT + 1), "invalid", "",
               f"the ticket body is {BODY_LIMIT + 1} bytes; {over}", limit="body")
    multibyte = "<p>" + "\u00e9" * 131100 + "</p>"
    yield Case("body-multibyte-over", "huge_body", "body", multibyte, "invalid", "", over, limit="body",
               note="131100 characters but 262207 bytes: the limit counts UTF-8 bytes")
    yield Case("body-entities-over", "huge_body", "body", "<p>" + "&nbsp;" * 43700 + "</p>", "invalid", "", over,
               limit="body")
    valid = editor_body(unit("nginx.service"))
    padded = _padded(valid + "<p>", "</p>", BODY_LIMIT + 100, filler="x")
    yield Case("body-valid-spec-over", "huge_body", "body", padded, "invalid", "", over, limit="body",
               pass_slice=True, note="a valid spec does not help: the size is checked before anything is parsed")
    at_limit = _padded("<pre>" + unit("nginx") + "</pre><p>", "</p>", BODY_LIMIT, filler="x")
    yield Case("body-at-limit", "huge_body", "body", at_limit, "invalid", "params.unit", UNIT_RULE,
               note="a body of exactly 256 KiB is read; its spec names a unit without suffix")
    reason = quote("A" * 70000)
    yield Case("spec-over-yaml-limit", "huge_body", "spec", spec("systemd_remote", {"unit": "nginx.service",
               "operation": "status"}, reason=reason), "invalid", "", "the limit is 65536 bytes (64 KiB)", limit="yaml")
    body = "<pre>" + spec("systemd_remote", {"unit": "nginx.service", "operation": "status"}, reason=reason) + "</pre>"
    yield Case("body-yaml-over", "huge_body", "body", body, "invalid", "", "the limit is 65536 bytes (64 KiB)",
               limit="yaml")
    comments = unit("nginx.service") + "# padding\n" * 7000
    yield Case("spec-comment-padding", "huge_body", "spec", comments, "invalid", "", "the limit is 65536 bytes",
               limit="yaml")


def _with_bytes(text: str, raw: bytes) -> bytes:
    """Return text as UTF-8 with the marker `@@` replaced by raw bytes that are not valid UTF-8."""
    if text.count("@@") != 1:
        raise ValueError("the text needs exactly one @@ marker")
    return text.encode("utf-8").replace(b"@@", raw)


def invalid_utf8() -> Iterator[Case]:
    def case(case_id: str, text: str, raw: bytes, path: str, *, message: str = FFFD, **extra: object) -> Case:
        input_kind = "body" if text.startswith("<") else "spec"
        return Case(case_id, "invalid_utf8", input_kind, _with_bytes(text, raw), "invalid", path, message, **extra)  # type: ignore[arg-type]

    yield case("unit-latin1", unit("nginx@@.service"), b"\xe9", "params.unit")
    yield case("host-continuation-byte", unit("nginx.service", host="svc-auto@@"), b"\x80", "host")
    yield case("url-overlong-slash", http(url=quote("http://127.0.0.1:8080/@@etc")), b"\xc0\xaf", "params.url")
    yield case("path-encoded-surrogate", spec("path_exists", {"path": quote("/srv/x@@")}), b"\xed\xa0\x80", "params.path")
    yield case("reason-truncated", spec("systemd_remote", {"unit": "nginx.service", "operation": "status"},
               reason=quote("restart @@")), b"\xe2\x82", "reason")
    yield case("key-invalid-byte", unit("nginx.service").replace("glpibot: 1", "glpi@@bot: 1"), b"\xff", "glpi\ufffdbot")
    yield case("container-above-unicode", container("wiki-@@"), b"\xf4\x90\x80\x80", "params.container")
    yield case("body-text-fe", http(expect_body_contains=quote("ok@@")), b"\xfe", "params.expect_body_contains")
    yield case("project-latin1", compose(project="graf@@na"), b"\xe0", "params.project")
    yield case("service-latin1", compose(services="[" + quote("we@@b") + "]"), b"\x9f", "params.services[0]")
    yield case("body-unit-latin1", editor_body(unit("nginx@@.service")), b"\xe9", "params.unit", pass_slice=True)
    cp1252 = editor_body(spec("systemd_remote", {"unit": "nginx.service", "operation": "status"}, reason="@@ok"))
    yield case("body-cp1252-quotes", cp1252, b"\x93restart\x94", "reason")
    utf16 = unit("nginx.service").encode("utf-16")
    yield Case("utf16-spec", "invalid_utf8", "spec", utf16, "invalid", "", "the character U+0000 is not allowed",
               note="UTF-16 read as UTF-8 with replacement holds NUL characters, which YAML does not allow")


def byte_order_marks() -> Iterator[Case]:
    yield Case("spec-bom-start", "bom", "spec", "\ufeff" + unit("nginx"), "invalid", "params.unit", UNIT_RULE,
               note="a BOM at the start is skipped, so the error is the unit's")
    yield Case("spec-bom-before-key", "bom", "spec", unit("nginx.service").replace("action:", "\ufeffaction:"),
               "invalid", "\\ufeffaction", "contains the character U+FEFF")
    yield Case("spec-bom-in-value", "bom", "spec", unit("nginx.service\ufeff"), "invalid", "params.unit", UNIT_RULE)
    yield Case("spec-bom-plain-value", "bom", "spec", unit("nginx.service").replace('"nginx.service"', "nginx.service\ufeff"),
               "invalid", "params.unit", UNIT_RULE)
    yield Case("spec-double-bom", "bom", "spec", "\ufeff\ufeff" + unit("nginx.service"), "invalid", "\\ufeffglpibot",
               "contains the character U+FEFF")
    yield Case("body-bom-start", "bom", "body", "\ufeff" + editor_body(unit("nginx")), "invalid", "params.unit",
               UNIT_RULE, pass_slice=True)
    hidden = ("<p>glpibot: 1<br>action: systemd_remote<br>host: &#xFEFF;svc-auto<br>params:<br>"
              "&nbsp;&nbsp;unit: nginx.service<br>&nbsp;&nbsp;operation: stop</p>")
    yield Case("body-bom-entity-host", "bom", "body", hidden, "policy", "params.operation", "operation 'stop' is not allowed",
               note="U+FEFF, U+200B-U+200D and U+2060 are dropped from ticket bodies, so the host reads svc-auto")
    yield Case("body-bom-plain-text", "bom", "body", "\ufeff" + unit("nginx"), "invalid", "params.unit", UNIT_RULE)


def tabs() -> Iterator[Case]:
    tab_indent = "invalid YAML: tabs are not allowed for indentation"
    base = unit("nginx.service")
    yield Case("spec-tab-indent", "tabs", "spec", base.replace("  unit:", "\tunit:"), "invalid", "", tab_indent)
    yield Case("spec-tab-after-colon", "tabs", "spec", base.replace("unit: ", "unit:\t"), "invalid", "",
               "invalid YAML: a tab is not allowed here")
    yield Case("spec-tab-in-quotes", "tabs", "spec", base.replace('"nginx.service"', '"nginx\t.service"'),
               "invalid", "params.unit", UNIT_RULE)
    yield Case("spec-tab-escape", "tabs", "spec", unit("nginx.service\t"), "invalid", "params.unit", UNIT_RULE)
    steps = "glpibot: 1\nsteps:\n  - action: systemd_remote\n\t  host: svc-auto\n"
    yield Case("spec-tab-in-steps", "tabs", "spec", steps, "invalid", "", tab_indent)
    pre = "<pre>" + base.replace("  unit:", "\tunit:") + "</pre>"
    yield Case("body-tab-pre", "tabs", "body", pre, "invalid", "", tab_indent, pass_slice=True)
    entity = ("<p>glpibot: 1<br>action: systemd_remote<br>host: svc-auto<br>params:<br>"
              "&#9;unit: nginx.service<br>&#9;operation: status</p>")
    yield Case("body-tab-entity", "tabs", "body", entity, "invalid", "params", "must be a mapping of parameter names",
               note="a line indented with a tab ends the spec as prose does, so params is empty")
    in_value = ("<p>glpibot: 1<br>action: systemd_remote<br>host: svc-auto<br>params:<br>"
                "&nbsp;&nbsp;unit: nginx&#9;.service<br>&nbsp;&nbsp;operation: status</p>")
    yield Case("body-tab-in-value", "tabs", "body", in_value, "invalid", "", "invalid YAML: a tab is not allowed here")


def line_ends() -> Iterator[Case]:
    yield Case("spec-crlf-accepted", "crlf", "spec", unit("backup@db.service").replace("\n", "\r\n"), "accepted",
               "params.unit", value="backup@db.service", note="CRLF is an ordinary YAML line end")
    yield Case("spec-crlf-bad-unit", "crlf", "spec", unit("nginx").replace("\n", "\r\n"), "invalid", "params.unit", UNIT_RULE)
    yield Case("spec-cr-only", "crlf", "spec", unit("nginx").replace("\n", "\r"), "invalid", "params.unit", UNIT_RULE)
    yield Case("spec-cr-in-value", "crlf", "spec", unit("nginx.service\r"), "invalid", "params.unit", UNIT_RULE)
    folded = unit("nginx.service").replace('"nginx.service"', '"nginx.service\r\n    ;id"')
    yield Case("spec-crlf-folded-value", "crlf", "spec", folded, "invalid", "params.unit", UNIT_RULE,
               note="the line break inside quotes folds to a space: `nginx.service ;id`")
    body = editor_body(unit("nginx")).replace("<br>", "\r\n<br>")
    yield Case("body-crlf", "crlf", "body", body, "invalid", "params.unit", UNIT_RULE, pass_slice=True)
    trailing = ("<p>glpibot: 1<br>action: systemd_remote<br>host: svc-auto<br>params:<br>"
                "&nbsp;&nbsp;unit: nginx.service<br>&nbsp;&nbsp;operation: status&#13;;id</p>")
    yield Case("body-cr-entity-tail", "crlf", "body", trailing, "accepted", "params.operation", value="status",
               note="&#13; is a line break, so `;id` is a line of prose after the spec and is ignored")
    joined = ("<p>glpibot: 1<br>action: systemd_remote<br>host: svc-auto<br>params:<br>"
              "&nbsp;&nbsp;unit: backup@db.service&#13;&nbsp;&nbsp;operation: restart</p>")
    yield Case("body-cr-entity-key", "crlf", "body", joined, "accepted", "params.operation", value="restart",
               note="&#13; starts a new YAML line; the key after it is read, and restart is on the allowlist")


def nbsp() -> Iterator[Case]:
    base = unit("nginx.service")
    yield Case("spec-nbsp-indent", "nbsp", "spec", base.replace("  unit:", "\u00a0\u00a0unit:"), "invalid",
               "", "line 5 is indented with U+00A0 (NO-BREAK SPACE)")
    yield Case("spec-narrow-nbsp-indent", "nbsp", "spec", base.replace("  unit:", "\u202f\u202funit:"), "invalid",
               "", "line 5 is indented with U+202F")
    yield Case("spec-ideographic-indent", "nbsp", "spec", base.replace("  unit:", "\u3000unit:"), "invalid",
               "", "line 5 is indented with U+3000")
    yield Case("spec-nbsp-last-line", "nbsp", "spec", base.replace("  operation:", "\u00a0\u00a0operation:"),
               "invalid", "\\xa0\\xa0operation", "contains the character U+00A0 (NO-BREAK SPACE)",
               note="the YAML still parses, with a top-level key that starts with two U+00A0")
    yield Case("spec-nbsp-in-host", "nbsp", "spec", unit("nginx.service", host=quote(HOST + "\u00a0")), "invalid",
               "host", "must be an inventory host name")
    yield Case("body-nbsp-indent", "nbsp", "body", editor_body(unit("nginx")), "invalid", "params.unit", UNIT_RULE,
               note="&nbsp; indentation is how GLPI's editor stores spaces, so the spec reads and the unit is wrong")
    value = ("<p>glpibot: 1<br>action: systemd_remote<br>host: svc-auto<br>params:<br>"
             "&nbsp;&nbsp;unit: nginx&nbsp;.service<br>&nbsp;&nbsp;operation: status</p>")
    yield Case("body-nbsp-in-value", "nbsp", "body", value, "invalid", "params.unit", UNIT_RULE)
    figure = ("<p>glpibot: 1<br>action: systemd_remote<br>host: svc&#x2007;auto<br>params:<br>"
              "&nbsp;&nbsp;unit: nginx.service<br>&nbsp;&nbsp;operation: status</p>")
    yield Case("body-figure-space-host", "nbsp", "body", figure, "invalid", "host", "must be an inventory host name",
               pass_slice=True)


def duplicate_keys() -> Iterator[Case]:
    dup = "duplicate key"
    yield Case("dup-url", "duplicate_keys", "spec", http() + '  url: "http://127.0.0.2:8080/"\n', "invalid",
               "params.url", "duplicate key `url` at line 5 (first at line 4)")
    yield Case("dup-glpibot", "duplicate_keys", "spec", unit("nginx.service") + "glpibot: 2\n", "invalid", "glpibot", dup)
    yield Case("dup-action", "duplicate_keys", "spec", unit("nginx.service").replace("host:", "action: path_exists\nhost:"),
               "invalid", "action", dup)
    yield Case("dup-host", "duplicate_keys", "spec", unit("nginx.service").replace("params:", "host: other\nparams:"),
               "invalid", "host", dup)
    yield Case("dup-quoted-key", "duplicate_keys", "spec", unit("nginx.service") + '  "unit": backup@x.service\n',
               "invalid", "params.unit", dup)
    flow = spec("systemd_remote", None) + "params: {unit: nginx.service, operation: status, unit: backup@x.service}\n"
    yield Case("dup-flow-map", "duplicate_keys", "spec", flow, "invalid", "params.unit", dup)
    steps = "glpibot: 1\nsteps:\n  - action: systemd_remote\n    action: http_check\n    host: svc-auto\n"
    yield Case("dup-in-step", "duplicate_keys", "spec", steps, "invalid", "steps[0].action", dup)
    body = editor_body(unit("nginx.service") + "  operation: restart\n")
    yield Case("dup-body", "duplicate_keys", "body", body, "invalid", "params.operation", dup, pass_slice=True)
    yield Case("dup-single-quoted", "duplicate_keys", "spec", unit("nginx.service") + "  'operation': restart\n",
               "invalid", "params.operation", dup)


def yaml11_types() -> Iterator[Case]:
    boolean = "must be true or false"
    status_rule = "must be an integer from 100 to 599 (or a list of them)"
    seconds = "must be a number of seconds greater than 0 and at most 120"
    for word in ("yes", "no", "on", "off", "y", "n"):
        yield Case(f"verify-tls-{word}", "yaml11_types", "spec", http(verify_tls=word), "invalid",
                   "params.verify_tls", f"{boolean}; got `{word}`", pass_slice=word == "yes")

    for typed in ("0o17", "017", "0x1F", "1_000", "2e2", "200.0"):
        yield Case(f"status-{typed.replace('.', '-')}", "yaml11_types", "spec", http(expect_status=typed), "invalid",
                   "params.expect_status", f"{status_rule}; got `{typed}`")
    for typed, label in (("1:30", "sexagesimal"), ("2024-06-01", "date"), (".inf", "inf"), (".nan", "nan"), ("~", "null")):
        yield Case(f"timeout-{label}", "yaml11_types", "spec", http(timeout_s=typed), "invalid", "params.timeout_s",
                   f"{seconds}; got `{typed}`", pass_slice=label == "sexagesimal")

    yield Case("status-list-float", "yaml11_types", "spec", http(expect_status="[200.0]"), "invalid",
               "params.expect_status[0]", "must be an integer from 100 to 599; got `200.0`",
               note="a float equal to an integer is still not an integer")
    yield Case("method-null", "yaml11_types", "spec", http(method="~"), "invalid", "params.method",
               "must be one of: GET, HEAD; got `~`")
    for word in ("no", "on"):
        yield Case(f"host-{word}", "yaml11_types", "spec", unit("nginx.service", host=word), "policy", "host",
                   f"host '{word}' is not in the inventory", pass_slice=word == "no",
                   note="the host keeps its text and is not in the inventory")
    yield Case("unit-on", "yaml11_types", "spec", spec("systemd_remote", {"unit": "on", "operation": "status"}),
               "invalid", "params.unit", f"{UNIT_RULE} with its suffix")
    for typed in ("2024-06-01", "0x1F", "017", "1:30"):
        yield Case(f"reason-{typed.replace(':', '-')}", "yaml11_types", "spec",
                   spec("systemd_remote", {"unit": "nginx.service", "operation": "status"}, reason=typed),
                   "accepted", "reason", value=typed, note="the reason keeps the text as typed")

    yield Case("reason-null", "yaml11_types", "spec",
               spec("systemd_remote", {"unit": "nginx.service", "operation": "status"}, reason="~"), "invalid",
               "reason", "must be text of at most 500 characters; got `~`")
    yield Case("container-octal", "yaml11_types", "spec", spec("docker_container_check", {"container": "017"}),
               "policy", "params.container", "container '017' is not allowed",
               note="017 stays the text 017, a valid name that the allowlist does not hold")
    yield Case("services-octal", "yaml11_types", "spec", compose(services="[017, 0x1F]"), "accepted",
               "params.services", value=["017", "0x1F"], note="service names keep their text; Compose services have no allowlist")
    yield Case("services-sexagesimal", "yaml11_types", "spec", compose(services="[web, 1:30]"), "invalid",
               "params.services[1]", "must be a service name")
    for typed in ("yes", "1.0", "0x1"):
        yield Case(f"version-{typed.replace('.', '-')}", "yaml11_types", "spec",
                   unit("nginx.service").replace("glpibot: 1", f"glpibot: {typed}"), "invalid", "glpibot",
                   f"glpibot must be 1 (the spec format version); got `{typed}`")
    yield Case("param-key-on", "yaml11_types", "spec", http(on="1"), "invalid", "params.on",
               "unknown parameter `on` for http_check")
    yield Case("status-plus-sign", "yaml11_types", "spec", http(expect_status="+200"), "accepted",
               "params.expect_status", value=200, note="+200 is a YAML 1.2 integer")


def cases() -> Iterator[Case]:
    yield from alias_bombs()
    yield from deep_nesting()
    yield from huge_bodies()
    yield from invalid_utf8()
    yield from byte_order_marks()
    yield from tabs()
    yield from line_ends()
    yield from nbsp()
    yield from duplicate_keys()
    yield from yaml11_types()
