"""Cases about what a field holds: HTML wrappers, unknown names, wrong types, paths, URLs, unit and container names, look-alikes."""

from __future__ import annotations

from collections.abc import Iterator

from hostile_model import HOST, Case, compose, container, editor_body, http, path, quote, spec, unit, url

NO_SPEC = "no spec found"
UNIT_RULE = "must be a full unit name"
CONTAINER_RULE = "must be a container name or id"
HOST_RULE = "must be an inventory host name"
PATH_RULE = "must be an absolute path starting with `/`"
NOT_ALLOWED_URL = "is not allowed by actions.http_check.allowed_urls"
STOP = "operation 'stop' is not allowed"


def _p(*lines: str) -> str:
    """Return one editor paragraph with `<br>` line breaks; lines are HTML already."""
    return "<p>" + "<br>".join(lines) + "</p>"


SYSTEMD_STOP = ("glpibot: 1", "action: systemd_remote", "host: svc-auto", "params:",
                "&nbsp;&nbsp;unit: nginx.service", "&nbsp;&nbsp;operation: stop")


def html_wrappers() -> Iterator[Case]:
    def case(case_id: str, body: str, kind: str, field: str = "", message: str = "", **extra: object) -> Case:
        return Case(case_id, "html_entities", "body", body, kind, field, message, **extra)  # type: ignore[arg-type]

    plain = _p(*SYSTEMD_STOP)
    once = plain.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    yield case("double-encoded", once.replace("&", "&amp;"), "policy", "params.operation", STOP,
               note="a body encoded twice over is decoded level by level while it holds no real tag")
    yield case("triple-encoded", once.replace("&", "&amp;").replace("&", "&amp;"), "policy", "params.operation", STOP,
               note="up to three levels are decoded; the first level that shows real tags is kept")
    yield case("quadruple-encoded", once.replace("&", "&amp;").replace("&", "&amp;").replace("&", "&amp;"), "missing", "",
               NO_SPEC, note="a fourth level is past the limit, so the body stays text and holds no spec")
    yield case("numeric-encoded", plain.replace("<", "&#60;").replace(">", "&#62;"), "policy", "params.operation", STOP)
    yield case("entity-nul-in-url", _p("glpibot: 1", "action: http_check", "params:",
               "&nbsp;&nbsp;url: http://127.0.0.1:8080/health&#0;"), "invalid", "params.url",
               "contains U+FFFD", note="&#0; decodes to U+FFFD, as HTML5 says")
    yield case("entity-nul-in-path", "<pre>" + path("/srv/x").replace('"/srv/x"', "/srv/x&#0;") + "</pre>",
               "invalid", "params.path", "contains U+FFFD")
    yield case("entity-emoji-unit", _p(*SYSTEMD_STOP[:4], "&nbsp;&nbsp;unit: nginx&#x1F600;.service",
               "&nbsp;&nbsp;operation: status"), "invalid", "params.unit", UNIT_RULE)
    yield case("entity-emoji-host", _p("glpibot: 1", "action: systemd_remote", "host: svc-auto&#x1F600;", "params:",
               "&nbsp;&nbsp;unit: nginx.service", "&nbsp;&nbsp;operation: status"), "invalid", "host", HOST_RULE)
    yield case("script-around-spec", "<script>" + plain + "</script>", "missing", "", NO_SPEC,
               note="the text of <script> and <style> is dropped")
    yield case("script-holds-spec", "<p>hello</p><script>\n" + unit("nginx.service") + "</script>", "missing", "", NO_SPEC)
    yield case("style-holds-spec", "<style>" + unit("nginx.service") + "</style><p>hello</p>", "missing", "", NO_SPEC)
    yield case("script-inside-pre", "<pre>" + unit("nginx").replace("status", "status<script>alert(1)</script>") + "</pre>",
               "invalid", "params.unit", UNIT_RULE, pass_slice=True)
    yield case("pre-inside-p", "<p>please run<pre>" + unit("nginx.service").replace("status", "stop") + "</pre></p>",
               "policy", "params.operation", STOP)
    yield case("comment-spec-line", "<p><!-- glpibot: 1 --></p><p>please restart nginx</p>", "missing", "", NO_SPEC)
    yield case("comment-hides-spec", "<!--" + plain + "-->", "missing", "", NO_SPEC, pass_slice=True)
    yield case("comment-unclosed", "<p>hello</p><!-- " + plain, "missing", "", NO_SPEC,
               note="an unclosed comment drops the rest of the body, as browsers do")
    yield case("comment-in-value", _p(*SYSTEMD_STOP[:5], "&nbsp;&nbsp;operation: stop<!-- ; rm -rf / -->"),
               "policy", "params.operation", STOP)
    yield case("cdata-spec", "<![CDATA[" + unit("nginx.service") + "]]><p>hi</p>", "missing", "", NO_SPEC)
    yield case("attribute-spec", '<p title="glpibot: 1">hello</p>', "missing", "", NO_SPEC)
    yield case("img-onerror", '<p><img src=x onerror="alert(1)"></p>' + editor_body(unit("nginx")), "invalid",
               "params.unit", UNIT_RULE, pass_slice=True)
    reason = _p("glpibot: 1", "reason: &lt;script&gt;alert(1)&lt;/script&gt; &lt;b&gt;now&lt;/b&gt;",
                *SYSTEMD_STOP[1:])
    yield case("reason-markup-policy", reason, "policy", "params.operation", STOP, pass_slice=True,
               note="the reason is shown in the follow-up; its markup must stay text")
    fence = "<p>&#96;&#96;&#96;yaml</p>" + _p(*SYSTEMD_STOP) + "<p>&#96;&#96;&#96;</p>"
    yield case("entity-fence", fence, "policy", "params.operation", STOP)
    yield case("br-inside-value", _p(*SYSTEMD_STOP[:4], "&nbsp;&nbsp;unit: nginx<br>.service",
               "&nbsp;&nbsp;operation: status"), "invalid", "params.unit", UNIT_RULE)
    yield case("textarea-wrapper", "<textarea>" + _p(*SYSTEMD_STOP) + "</textarea>", "policy", "params.operation", STOP)
    yield case("no-spec-prose", "<p>Hello, please restart nginx on svc-auto; thanks</p>", "missing", "", NO_SPEC,
               pass_slice=True)
    yield case("empty-pre", "<p>see below</p><pre>   </pre>", "missing", "", NO_SPEC)


def unknown_names() -> Iterator[Case]:
    available = "available: http_check, path_exists"

    def action(name: str) -> str:
        return spec("systemd_remote", {"unit": "nginx.service", "operation": "status"}).replace(
            "action: systemd_remote", f"action: {name}")

    for label, name in (("shell", "shell"), ("upper", "HTTP_CHECK"), ("dash", "http-check"),
                        ("dunder", "__import__"), ("module-path", "os.system"), ("trailing-space", '"systemd_remote "')):
        yield Case(f"action-{label}", "unknown_names", "spec", action(name), "invalid", "action",
                   "unknown action", pass_slice=label == "shell")
    yield Case("action-list", "unknown_names", "spec", action("[systemd_remote]"), "invalid", "action",
               f"must be the name of an action; got a list of 1 item; {available}")
    yield Case("action-empty", "unknown_names", "spec", action('""'), "invalid", "action", "unknown action")
    yield Case("top-key-command", "unknown_names", "spec", unit("nginx.service") + "command: id\n", "invalid",
               "command", "unknown key `command`; allowed:")
    yield Case("step-key-run", "unknown_names", "spec",
               "glpibot: 1\nsteps:\n  - action: systemd_remote\n    host: svc-auto\n    run: id\n"
               "    params: {unit: nginx.service, operation: status}\n",
               "invalid", "steps[0].run", "unknown key `run` in a step")
    yield Case("param-cmd", "unknown_names", "spec", unit("nginx.service") + "  cmd: id\n", "invalid", "params.cmd",
               "unknown parameter `cmd` for systemd_remote")
    yield Case("param-upper-url", "unknown_names", "spec", spec("http_check", {"URL": quote("http://127.0.0.1:8080/")}, host=None),
               "invalid", "params.URL", "unknown parameter `URL` for http_check")
    yield Case("param-key-newline", "unknown_names", "spec", unit("nginx.service") + '  "cmd\\nid": x\n', "invalid",
               "params.cmd\\nid", "contains the character U+000A",
               note="the key is shown escaped, so the path and the message stay on one line")
    yield Case("param-dunder", "unknown_names", "spec", unit("nginx.service") + "  __class__: x\n", "invalid",
               "params.__class__", "unknown parameter `__class__`")
    yield Case("no-action-no-steps", "unknown_names", "spec", "glpibot: 1\nhost: svc-auto\n", "invalid", "",
               "missing `action` or `steps`")
    yield Case("no-version", "unknown_names", "spec", unit("nginx.service").replace("glpibot: 1\n", ""), "invalid",
               "glpibot", "missing `glpibot: 1`")
    yield Case("params-on-top-with-steps", "unknown_names", "spec",
               "glpibot: 1\nparams: {unit: x}\nsteps:\n  - action: http_check\n    params: {url: 'http://127.0.0.1:8080/'}\n",
               "invalid", "params", "goes inside each step")


def wrong_types() -> Iterator[Case]:
    def case(case_id: str, text: str, field: str, message: str, **extra: object) -> Case:
        return Case(case_id, "wrong_types", "spec", text, "invalid", field, message, **extra)  # type: ignore[arg-type]

    yield case("url-list", spec("http_check", {"url": "[http://127.0.0.1:8080/]"}, host=None), "params.url",
               "must be non-empty text of at most 2048 characters; got a list of 1 item")
    yield case("status-quoted", http(expect_status='"200"'), "params.expect_status", "which is text; write 200 without quotes")
    yield case("timeout-bool", http(timeout_s="true"), "params.timeout_s", "got `true`")
    yield case("verify-quoted", http(verify_tls='"true"'), "params.verify_tls", "must be true or false")
    yield case("services-text", compose(services="web"), "params.services", "must be a list of 1 to 50 different service names")
    yield case("services-ints", compose(services="[1, 2]"), "params.services[0]", "must be a service name")
    yield case("services-duplicate", compose(services="[web, web]"), "params.services", "`\"web\"` more than once")
    yield case("params-list", spec("http_check", None, host=None) + "params: [url]\n", "params",
               "must be a mapping of parameter names to values; got a list of 1 item", pass_slice=True)
    yield case("steps-mapping", "glpibot: 1\nsteps: {action: http_check}\n", "steps", "must be a list of 1 to 20 steps")
    yield case("steps-empty", "glpibot: 1\nsteps: []\n", "steps", "got an empty list")
    many = "glpibot: 1\nsteps:\n" + "  - {action: http_check, params: {url: 'http://127.0.0.1:8080/'}}\n" * 21
    yield case("steps-21", many, "steps", "got a list of 21 items")
    yield case("steps-item-text", "glpibot: 1\nsteps: [restart nginx]\n", "steps[0]", "must be a mapping with `action`")
    yield case("host-int", unit("nginx.service", host="12"), "host", HOST_RULE)
    yield case("operation-list", spec("systemd_remote", {"unit": "nginx.service", "operation": "[status, restart]"}),
               "params.operation", "must be one of: status, is-active")
    yield case("version-text", unit("nginx.service").replace("glpibot: 1", 'glpibot: "1"'), "glpibot",
               'glpibot must be 1 (the spec format version); got `"1"`')
    yield case("params-null", spec("http_check", None, host=None) + "params:\n", "params", "got nothing")
    yield case("top-list", "- glpibot: 1\n- action: http_check\n", "", "the spec must be a YAML mapping")
    yield case("top-text", "restart nginx please\n", "", "the spec must be a YAML mapping")
    yield case("yaml-tag", http(method="!!python/object/apply:os.system [id]"), "", "YAML tags such as")
    yield case("two-documents", unit("nginx.service") + "---\n" + unit("nginx.service"), "", "single YAML document")
    yield case("expect-status-list-text", http(expect_status="[200, ok]"), "params.expect_status[1]",
               "must be an integer from 100 to 599")
    yield case("http-with-host", http().replace("action: http_check", f"action: http_check\nhost: {HOST}"), "host",
               "`host` is not allowed for http_check")
    yield case("ssh-without-host", spec("systemd_remote", {"unit": "nginx.service", "operation": "status"}, host=None),
               "host", "missing `host` for systemd_remote")


def path_traversal() -> Iterator[Case]:
    def case(case_id: str, typed: str, kind: str, message: str = "", **extra: object) -> Case:
        return Case(case_id, "path_traversal", "spec", path(typed), kind, "params.path", message, **extra)  # type: ignore[arg-type]

    outside = "is outside actions.path_exists.allowed_paths.svc-auto"
    yield case("dotdot-etc", "/srv/../etc/passwd", "policy", "contains a '..' segment", pass_slice=True)
    yield case("dot-segment", "/srv/./x", "policy", "contains a '.' segment; write it as /srv/x")
    yield case("double-slash-root", "//srv", "policy", "contains an empty segment (//)")
    yield case("double-slash", "//srv/x", "policy", "contains an empty segment (//); write it as /srv/x")
    yield case("inner-double-slash", "/srv//x", "policy", "contains an empty segment")
    yield case("trailing-slash", "/srv/x/", "accepted", value="/srv/x/", note="one trailing `/` is normalised away")
    yield case("trailing-nul", "/srv/x\x00", "invalid", PATH_RULE)
    yield case("division-slash", "/srv\u2215x", "policy", outside,
               note="U+2215 is an ordinary character in a file name, so the path is `/srv∕x` beside /srv")
    yield case("fullwidth-slashes", "\uff0fsrv\uff0fx", "invalid", PATH_RULE)
    yield case("fullwidth-inner", "/srv\uff0fx", "policy", outside)
    yield case("back-into-allowed", "/srv/../srv/x", "policy", "contains a '..' segment",
               note="allowed once normalised, but a path with `..` is rejected whatever it resolves to")
    yield case("through-etc", "/etc/../srv/x", "policy", "contains a '..' segment")
    yield case("dotdot-last", "/srv/x/..", "policy", "contains a '..' segment")
    yield case("deep-dotdot", "/srv/x/../../etc/shadow", "policy", "contains a '..' segment")
    yield case("percent-dots", "/srv/%2e%2e/etc/passwd", "accepted", value="/srv/%2e%2e/etc/passwd",
               note="SFTP does not decode percent signs: this names a directory called %2e%2e under /srv")
    yield case("backslash-dots", "/srv\\..\\etc", "invalid", PATH_RULE)
    yield case("allowed-root-itself", "/srv", "policy", outside)
    yield case("upper-case", "/SRV/x", "policy", outside)
    yield case("fullwidth-dots", "/srv/\uff0e\uff0e/etc", "accepted", value="/srv/\uff0e\uff0e/etc",
               note="U+FF0E is not a dot to SFTP; the path stays below /srv")
    yield case("relative", "srv/x", "invalid", PATH_RULE)
    yield case("home-tilde", "~/x", "invalid", PATH_RULE)
    yield case("newline-etc", "/srv/x\n/etc/passwd", "invalid", PATH_RULE)
    yield case("over-long", "/srv/" + "a" * 4100, "invalid", PATH_RULE)
    yield case("rtl-override", "/srv/\u202etxt.exe", "policy", "contains the control character U+202E")
    yield case("zero-width-segment", "/srv/\u200b/x", "policy", "contains the control character U+200B")


def url_tricks() -> Iterator[Case]:
    def case(case_id: str, typed: str, kind: str, message: str = "", **extra: object) -> Case:
        return Case(case_id, "url_tricks", "spec", url(typed), kind, "params.url", message, **extra)  # type: ignore[arg-type]

    userinfo = "url must not contain a user name or password"
    invalid_ip = "in url is not a valid IPv4 address"
    yield case("userinfo-allowed-at-other", "http://127.0.0.1:8080@127.0.0.2/", "invalid", userinfo, pass_slice=True)
    yield case("userinfo-arpa", "https://a.home.arpa@127.0.0.2/", "invalid", userinfo)
    yield case("userinfo-password", "http://user:pass@127.0.0.1:8080/", "invalid", userinfo)
    for scheme, value in (("file", "file:///etc/passwd"), ("gopher", "gopher://127.0.0.1:70/_x"),
                          ("javascript", "javascript:alert(1)"), ("data", "data:text/html,x"), ("ftp", "ftp://127.0.0.1/")):
        yield case(f"scheme-{scheme}", value, "invalid", f"url scheme `{scheme}` is not allowed")
    yield case("scheme-upper", "HTTP://127.0.0.1:8080/health", "accepted", value="HTTP://127.0.0.1:8080/health",
               note="schemes are case-insensitive")
    yield case("scheme-relative", "//127.0.0.1:8080/", "invalid", "url must start with http:// or https://")
    yield case("scheme-no-slashes", "http:127.0.0.1:8080/", "invalid", "url must start with http:// or https://")
    yield case("ipv6-loopback", "http://[::1]:8080/", "policy", NOT_ALLOWED_URL)
    yield case("ipv6-mapped", "http://[::ffff:127.0.0.1]:8080/", "policy", NOT_ALLOWED_URL)
    yield case("ipv6-long-form", "http://[0:0:0:0:0:0:0:1]:8080/", "policy", NOT_ALLOWED_URL)
    yield case("ipv6-zone", "http://[fe80::1%25lo]:8080/", "policy", "has an IPv6 zone id")
    yield case("ipv6-unbracketed", "http://::1:8080/", "invalid", "must be in brackets")
    yield case("port-zero", "http://127.0.0.1:0/", "invalid", "port 0 is out of range 1-65535")
    yield case("port-too-big", "http://127.0.0.1:65536/", "invalid", "port 65536 is out of range 1-65535")
    yield case("port-plus", "http://127.0.0.1:+80/", "invalid", "port `+80` in url is not a number")
    yield case("port-twice", "http://127.0.0.1:80:80/", "invalid", "must be in brackets")
    yield case("https-to-http-pattern", "https://127.0.0.1:8080/", "policy", NOT_ALLOWED_URL)
    yield case("percent-host", "http://127.0.0.%31:8080/", "invalid", "is not a valid host name")
    yield case("decimal-ip", "http://2130706433:8080/", "invalid", invalid_ip, pass_slice=True)
    yield case("octal-ip", "http://0177.0.0.1:8080/", "invalid", invalid_ip)
    yield case("short-ip", "http://127.1:8080/", "invalid", invalid_ip)
    yield case("hex-ip", "http://0x7f.0.0.1:8080/", "policy", NOT_ALLOWED_URL,
               note="0x7f.0.0.1 reads as a host name, which the allowlist does not hold")
    yield case("ip-trailing-dot", "http://127.0.0.1.:8080/", "invalid", invalid_ip)
    yield case("name-trailing-dot", "https://wiki.home.arpa./", "policy", NOT_ALLOWED_URL,
               note="a trailing dot is part of the name and the pattern has none")
    yield case("backslash-at", "http://127.0.0.1:8080\\@127.0.0.2/", "invalid", "url must not contain a backslash")
    yield case("fragment-at", "http://127.0.0.1:8080#@127.0.0.2/", "accepted", value="http://127.0.0.1:8080#@127.0.0.2/",
               note="after # is a fragment: the request goes to 127.0.0.1:8080")
    yield case("query-at", "http://127.0.0.1:8080?@127.0.0.2/", "accepted", value="http://127.0.0.1:8080?@127.0.0.2/",
               note="after ? is the query: the request goes to 127.0.0.1:8080")
    yield case("dotdot-path", "http://127.0.0.1:8080/../x", "policy", "has a '.' or '..' path segment")
    yield case("encoded-dotdot", "http://127.0.0.1:8080/%2e%2e/x", "policy", "has a '.' or '..' path segment")
    yield case("host-in-path", "https://evil.test/x.home.arpa/", "policy", NOT_ALLOWED_URL)
    yield case("suffix-host", "https://a.home.arpa.evil.test/", "policy", NOT_ALLOWED_URL)
    yield case("bare-suffix", "https://home.arpa/", "policy", NOT_ALLOWED_URL)
    yield case("two-labels", "https://x.y.home.arpa/", "policy", NOT_ALLOWED_URL)
    yield case("localhost", "http://localhost:8080/", "policy", NOT_ALLOWED_URL)
    yield case("other-loopback", "http://127.0.0.2:8080/", "policy", NOT_ALLOWED_URL)
    yield case("tab-in-url", "http://127.0.0.1:8080/\t", "invalid", "url must not contain control or invisible characters")
    yield case("space-at", "http://127.0.0.1:8080 @127.0.0.2/", "invalid", "url must not contain spaces")
    yield case("no-host", "http:///x", "invalid", "url has no host name")
    yield case("line-separator-host", "http://a\u2028b/", "invalid", "host `a\\u2028b` in url is not a valid host name")


def name_tricks() -> Iterator[Case]:
    for label, value in (("dotdot", "../x.service"), ("semicolon", "x.service;id"), ("dash", "-x.service"),
                         ("help-flag", "--help"), ("no-suffix", "nginx"), ("upper-suffix", "nginx.SERVICE"),
                         ("slash-instance", "backup@../x.service"), ("space", "backup@x y.service"),
                         ("dropin", "nginx.service.d/override.conf"), ("trailing-space", "nginx.service ")):
        yield Case(f"unit-name-{label}", "name_tricks", "spec", unit(value), "invalid", "params.unit", UNIT_RULE,
                   pass_slice=label == "dotdot")

    yield Case("unit-over-long", "name_tricks", "spec", unit("a" * 250 + ".service"), "invalid", "params.unit",
               "got 258 characters")
    yield Case("unit-instance", "name_tricks", "spec", unit("backup@db.service"), "accepted", "params.unit",
               value="backup@db.service")
    yield Case("unit-escaped-instance", "name_tricks", "spec", unit("backup@\\x2fetc.service"), "accepted",
               "params.unit", value="backup@\\x2fetc.service",
               note="systemd's own escape for / in an instance; the name is one quoted argument after `--`")
    yield Case("unit-empty-instance", "name_tricks", "spec", unit("backup@.service"), "accepted", "params.unit",
               value="backup@.service", note="the template itself; systemctl reports it, no shell sees it")

    yield Case("unit-upper", "name_tricks", "spec", unit("NGINX.service"), "policy", "params.unit",
               "unit 'NGINX.service' is not allowed on host svc-auto")
    yield Case("unit-restart-other", "name_tricks", "spec", unit("sshd.service", operation="restart"), "policy",
               "params.unit", "unit 'sshd.service' is not allowed")
    for label, value in (("dotdot", "../wiki-app"), ("semicolon", "wiki-a;id"), ("dash", "-wiki-app"),
                         ("slash", "wiki-a/b"), ("glob", "wiki-*"), ("over-long", "wiki-" + "a" * 124)):
        message = "got 129 characters" if label == "over-long" else CONTAINER_RULE
        yield Case(f"container-name-{label}", "name_tricks", "spec", container(value), "invalid", "params.container", message)
    for label, value in (("upper", "WIKI-app"), ("underscore", "wiki_app")):
        yield Case(f"container-{label}", "name_tricks", "spec", container(value), "policy", "params.container",
                   f"container '{value}' is not allowed")
    yield Case("container-prefix-only", "name_tricks", "spec", container("wiki-"), "accepted", "params.container",
               value="wiki-", note="`wiki-*` matches an empty rest; docker inspect gets the name after `--`")

    yield Case("project-dotdot", "name_tricks", "spec", compose(project="../grafana"), "invalid", "params.project",
               "must be a compose project name")
    yield Case("project-upper", "name_tricks", "spec", compose(project="Grafana"), "invalid", "params.project",
               "must be a compose project name")
    yield Case("project-unknown", "name_tricks", "spec", compose(project="grafana-x"), "policy", "params.project",
               "project 'grafana-x' is not configured")
    yield Case("project-operation-down", "name_tricks", "spec", compose(operation="down"), "policy",
               "params.operation", "operation 'down' is not allowed for project grafana")
    yield Case("service-flag", "name_tricks", "spec", compose(services="[-d]"), "invalid", "params.services[0]",
               "must be a service name")
    yield Case("service-long-flag", "name_tricks", "spec", compose(services='["--build"]'), "invalid",
               "params.services[0]", "must be a service name")
    yield Case("host-trailing-dot", "name_tricks", "spec", unit("nginx.service", host="svc-auto."), "policy", "host",
               "host 'svc-auto.' is not in the inventory")
    yield Case("host-upper", "name_tricks", "spec", unit("nginx.service", host="SVC-AUTO"), "policy", "host",
               "host 'SVC-AUTO' is not in the inventory")
    yield Case("host-dash", "name_tricks", "spec", unit("nginx.service", host="-svc-auto"), "invalid", "host", HOST_RULE)
    yield Case("host-over-long", "name_tricks", "spec", unit("nginx.service", host="s" * 64), "invalid", "host", HOST_RULE)
    yield Case("host-address", "name_tricks", "spec", unit("nginx.service", host="127.0.0.1"), "policy", "host",
               "host '127.0.0.1' is not in the inventory", note="a host is an inventory name, never an address")


def lookalikes() -> Iterator[Case]:
    def case(case_id: str, text: str, kind: str, field: str, message: str = "", input_kind: str = "spec",
             **extra: object) -> Case:
        return Case(case_id, "lookalikes", input_kind, text, kind, field, message, **extra)  # type: ignore[arg-type]

    yield case("cyrillic-unit", unit("ngin\u0445.service"), "invalid", "params.unit", UNIT_RULE, pass_slice=True)
    yield case("cyrillic-suffix", unit("nginx.s\u0435rvice"), "invalid", "params.unit", UNIT_RULE)
    yield case("cyrillic-container", container("w\u0456k\u0456-app"), "invalid", "params.container", CONTAINER_RULE)
    yield case("cyrillic-host", unit("nginx.service", host="svc-\u0430uto"), "invalid", "host", HOST_RULE)
    yield case("cyrillic-project", compose(project="gr\u0430fana"), "invalid", "params.project", "must be a compose project name")
    yield case("cyrillic-url-host", url("https://\u0430.home.arpa/"), "policy", "params.url",
               "only printable ASCII is allowed")
    yield case("cyrillic-action", unit("nginx.service").replace("systemd_remote", "systemd_r\u0435mote"), "invalid",
               "action", "unknown action `systemd_r\u0435mote`")
    yield case("cyrillic-param-key", unit("nginx.service").replace("  unit:", "  \u0443nit:"), "invalid",
               "params.\u0443nit", "unknown parameter `\u0443nit` for systemd_remote")
    yield case("fullwidth-unit", unit("\uff4e\uff47\uff49\uff4e\uff58.service"), "invalid", "params.unit", UNIT_RULE)
    yield case("fullwidth-host", unit("nginx.service", host="\uff53\uff56\uff43-auto"), "invalid", "host", HOST_RULE)
    yield case("fullwidth-url-digits", url("http://\uff11\uff12\uff17.0.0.1:8080/"), "policy", "params.url",
               "only printable ASCII is allowed")
    yield case("math-bold-unit", unit("\U0001d427\U0001d420\U0001d422\U0001d427\U0001d431.service"), "invalid",
               "params.unit", UNIT_RULE)
    yield case("combining-container", container("wiki-a\u0301pp"), "invalid", "params.container", CONTAINER_RULE)
    yield case("zwj-host-spec", unit("nginx.service", host=quote("svc\u200d-auto")), "invalid", "host", HOST_RULE)
    yield case("zwj-unit-spec", unit("ngi\u200dnx.service"), "invalid", "params.unit", UNIT_RULE)
    zwj_body = _p("glpibot: 1", "action: systemd_remote", "host: svc\u200d-auto", "params:",
                  "&nbsp;&nbsp;unit: ngi\u200dnx.service", "&nbsp;&nbsp;operation: status")
    yield case("zwj-body", zwj_body, "accepted", "host", value=HOST, input_kind="body",
               note="ticket bodies drop U+200B-U+200D, U+2060 and U+FEFF, so what runs is what GLPI shows")
    yield case("soft-hyphen-host", _p("glpibot: 1", "action: systemd_remote", "host: svc-\u00adauto", "params:",
               "&nbsp;&nbsp;unit: nginx.service", "&nbsp;&nbsp;operation: status"), "invalid", "host", HOST_RULE,
               input_kind="body")
    yield case("rtl-unit-body", _p("glpibot: 1", "action: systemd_remote", "host: svc-auto", "params:",
               "&nbsp;&nbsp;unit: nginx\u202e.service", "&nbsp;&nbsp;operation: status"), "invalid", "params.unit",
               UNIT_RULE, input_kind="body")
    yield case("rtl-host", unit("nginx.service", host=quote("svc-auto\u202e")), "invalid", "host", HOST_RULE,
               pass_slice=True)
    yield case("rtl-url", url("http://127.0.0.1:8080/\u202eexe.txt"), "invalid", "params.url",
               "url must not contain control or invisible characters")
    yield case("rtl-reason", spec("systemd_remote", {"unit": "nginx.service", "operation": "status"},
               reason=quote("check \u202eenigx")), "accepted", "reason", value="check \u202eenigx",
               note="free text; the follow-up escapes markup but shows the characters as written")
    yield case("digit-zero-host", unit("nginx.service", host="svc-aut0"), "policy", "host",
               "host 'svc-aut0' is not in the inventory")
    yield case("greek-omicron-container", container("wiki-\u03bfps"), "invalid", "params.container", CONTAINER_RULE)


def cases() -> Iterator[Case]:
    yield from html_wrappers()
    yield from unknown_names()
    yield from wrong_types()
    yield from path_traversal()
    yield from url_tricks()
    yield from name_tricks()
    yield from lookalikes()
