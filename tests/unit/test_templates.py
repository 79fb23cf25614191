"""Templates: rendering, error messages, and the rendered files accepted by the real programs.

Real-program checks need Debian packages (skipped with the reason otherwise):
    apt-get install nginx-light uwsgi-core uwsgi-plugin-python3 python3-venv
"""

from __future__ import annotations

import getpass
import grp
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from provisioner import PROJECT_ROOT, TEMPLATES_DIR
from provisioner.errors import UserError
from provisioner.templating import render
from provisioner.stack.app import context
from provisioner.stack.layout import Layout

pytestmark = pytest.mark.unit

TEMPLATES = ["nginx/site.conf.j2", "uwsgi/app.ini.j2", "systemd/uwsgi-app.service.j2", "app/env.j2"]
SECURITY_HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
UWSGI = shutil.which("uwsgi") or ("/usr/bin/uwsgi" if os.path.exists("/usr/bin/uwsgi") else None)
UWSGI_PY = Path("/usr/lib/uwsgi/plugins/python3_plugin.so")
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx missing: apt-get install nginx-light")
needs_uwsgi = pytest.mark.skipif(
    UWSGI is None or not UWSGI_PY.exists(),
    reason="uWSGI missing: apt-get install uwsgi-core uwsgi-plugin-python3",
)

_DEFAULTS = dict(
    app_name="model_api", app_source="examples/model_api", app_module="model_api.wsgi",
    app_callable="app", app_requirements="requirements.txt", app_env={}, keep_releases=3,
    health_path="/healthz", server_name="_", http_port=80, static_url="/static/",
    static_dir="static", static_expires="7d", client_max_body_size="10m", nginx_extra_config="",
    uwsgi_processes=2, uwsgi_threads=2, uwsgi_chmod_socket="660", uwsgi_master=True,
    uwsgi_vacuum=True, uwsgi_die_on_term=True, uwsgi_need_app=True, uwsgi_strict=True,
    uwsgi_lazy_apps=False, uwsgi_harakiri=60, uwsgi_buffer_size=32768, uwsgi_listen=1024,
    uwsgi_max_requests=0, uwsgi_plugins="python3", base_packages=[],
    apt_cache_valid_time=3600, apt_lock_timeout=300, apt_update_timeout=120, deploy_lock_timeout=0,
)


def settings(**over) -> SimpleNamespace:
    """The host settings with docs/settings.md defaults: from provisioner.config.values when it is
    there (then `over` is validated by it), else a plain namespace. Values the real module would
    refuse on purpose (app_user root for a test server) go through `force`."""
    force = over.pop("force", {})
    try:
        from provisioner.config import values as variables
    except ImportError:
        variables = None
    if variables is not None:
        v = variables.resolve(over, where="test", base_dir=PROJECT_ROOT)
        values = dict(v.as_dict()) if hasattr(v, "as_dict") else dict(v)
    else:
        values = dict(_DEFAULTS, **over)
        name = values["app_name"]
        values.setdefault("app_user", name)
        values.setdefault("app_group", values["app_user"])
        values.setdefault("app_root", f"/srv/{name}")
        values.setdefault("uwsgi_socket", f"/run/{name}/uwsgi.sock")
        values.setdefault("uwsgi_chown_socket", f"{values['app_user']}:www-data")
        harakiri = values["uwsgi_harakiri"]
        values.setdefault("uwsgi_read_timeout", harakiri + 5 if harakiri else 60)
    values.update(force)
    return SimpleNamespace(**values)


def ctx(v) -> dict:
    """What the stack's roles give every template (roles/app.py)."""
    return context(v)


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


# --- rendering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_render_with_defaults(name):
    out = render(name, ctx(settings()))
    assert out.endswith("\n")
    assert "{{" not in out and "{%" not in out
    assert "Managed by provision" in out
    assert "None" not in out and "True" not in out and "False" not in out


def test_nginx_site_defaults():
    out = render("nginx/site.conf.j2", ctx(settings()))
    body = lines(out)
    for expected in [
        "listen 80 backlog=4096;",
        "server_name _;",
        "server_tokens off;",
        "gzip on;",
        "client_max_body_size 10m;",
        "access_log /var/log/nginx/model_api.access.log model_api_timed;",
        "error_log /var/log/nginx/model_api.error.log;",
        "location /static/ {",
        "alias /srv/model_api/current/app/static/;",
        "expires 7d;",
        "location / {",
        "include uwsgi_params;",
        "uwsgi_param HTTP_X_FORWARDED_PROTO $scheme;",
        "uwsgi_param HTTP_X_FORWARDED_SSL $https if_not_empty;",
        "uwsgi_param HTTP_HOST $host$provision_model_api_host_port;",
        "uwsgi_pass unix:/run/model_api/uwsgi.sock;",
        "uwsgi_read_timeout 65s;",
    ]:
        assert expected in body, expected
    gzip_types = re.search(r"gzip_types([^;]*);", out).group(1).split()
    assert "application/json" in gzip_types and "text/html" not in gzip_types  # html: always, dup warns
    # overrides come after the include (uWSGI keeps the last value of a repeated param)
    assert body.index("include uwsgi_params;") < body.index(
        "uwsgi_param HTTP_X_FORWARDED_PROTO $scheme;"
    )
    assert "keepalive" not in out  # a no-op for uwsgi_pass
    assert "Cache-Control" not in re.sub(r"#.*", "", out)  # expires sets it; a second one doubles
    assert "http2" not in out


def _blocks(text: str, keyword: str) -> list[str]:
    """Bodies of `keyword ... { ... }` blocks (comments removed, nested braces counted)."""
    text = re.sub(r"#.*", "", text)
    out = []
    for m in re.finditer(rf"\b{keyword}\b[^{{;]*{{", text):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        out.append(text[m.end(): i - 1])
    return out


def test_nginx_security_headers_in_every_location_that_adds_headers():
    v = settings(nginx_extra_config="location /x {\n    return 204;\n}\n")
    out = render("nginx/site.conf.j2", ctx(v))
    (server,) = _blocks(out, "server")
    server_level = re.sub(r"location[^{]*{[^}]*}", "", server)
    for header in SECURITY_HEADERS:
        assert re.search(rf"add_header {header} .* always;", server_level), header
    for loc in _blocks(server, "location"):
        if "add_header" in loc:
            for header in SECURITY_HEADERS:
                assert f"add_header {header}" in loc


def test_nginx_extra_config_inside_server_block_and_indented():
    extra = "location = /ping {\n    return 200 'pong';\n}\nlimit_req_status 429;"
    out = render("nginx/site.conf.j2", ctx(settings(nginx_extra_config=extra)))
    (server,) = _blocks(out, "server")
    assert "location = /ping {" in server and "limit_req_status 429;" in server
    assert "\n    location = /ping {\n        return 200 'pong';\n    }\n" in out
    assert out.rstrip().endswith("}")


def test_nginx_non_defaults():
    v = settings(http_port=8080, server_name="api.example.com www.example.com", static_url="/assets/",
                 static_dir="public/build", static_expires="off", client_max_body_size="1m",
                 uwsgi_harakiri=0, app_name="shop")
    body = lines(render("nginx/site.conf.j2", ctx(v)))
    assert "listen 8080 backlog=4096;" in body
    assert "server_name api.example.com www.example.com;" in body
    assert "location /assets/ {" in body
    assert "alias /srv/shop/current/app/public/build/;" in body
    assert "expires off;" in body
    assert "uwsgi_read_timeout 60s;" in body
    assert "uwsgi_pass unix:/run/shop/uwsgi.sock;" in body


def _uwsgi_sections(text: str) -> dict[str, dict[str, str]]:
    """Each [section] of an ini: its options (an option given twice in one section fails)."""
    sections: dict[str, dict[str, str]] = {}
    for line in lines(text):
        if line.startswith("[") and line.endswith("]"):
            opts = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        assert key.strip() not in opts, f"option {key} twice"
        opts[key.strip()] = value.strip()
    return sections


def _uwsgi_options(text: str) -> dict[str, str]:
    """The app's options: the [app] section both instances load."""
    return _uwsgi_sections(text)["app"]


def test_uwsgi_ini_defaults():
    out = render("uwsgi/app.ini.j2", ctx(settings()))
    assert lines(out)[0] == "[uwsgi]"  # the section `uwsgi --ini FILE` reads: the app's unit
    sections = _uwsgi_sections(out)
    # Where the app listens, in the ini: the unit's socket, and the standby's for a restart; nginx's
    # uwsgi_socket is a link to the one that serves. Both load the same [app].
    # Each has its stats socket (`provision top`) in a directory of the app user's.
    assert sections["uwsgi"] == {"socket": "/run/model_api/uwsgi-main.sock", "ini": "%p:app",
                                 "stats": "/run/model_api/stats/main.sock"}
    assert sections["standby"] == {"socket": "/run/model_api/uwsgi-standby.sock", "ini": "%p:app",
                                   "stats": "/run/model_api/stats/standby.sock"}
    assert lines(out)[lines(out).index("[app]") + 1] == "plugins = python3"  # first, or strict mode rejects `module`
    assert _uwsgi_options(out) == {
        "plugins": "python3", "strict": "true",
        "chdir": "/srv/model_api/current/app", "virtualenv": "/srv/model_api/current/venv",
        "module": "model_api.wsgi", "callable": "app", "need-app": "true",
        "chmod-socket": "660",
        "chown-socket": "model_api:www-data", "uid": "model_api", "gid": "model_api",
        "listen": "1024", "master": "true", "processes": "2", "threads": "2",
        "enable-threads": "true", "single-interpreter": "true", "lazy-apps": "false",
        "vacuum": "true", "die-on-term": "true", "buffer-size": "32768", "harakiri": "60",
        "post-buffering": "8192", "worker-reload-mercy": "15",
        "disable-logging": "true", "log-4xx": "true", "log-5xx": "true", "log-slow": "1000",
        "ignore-sigpipe": "true", "ignore-write-errors": "true", "disable-write-exception": "true",
    }
    # No recycling by default: on uWSGI 2.0.21 every worker recycled at once and hung (docs/settings.md).
    assert not {"max-requests", "max-worker-lifetime"} & set(_uwsgi_options(out))
    assert "logto" not in out and "daemonize" not in out  # logs go to the journal


def test_uwsgi_ini_switches_off():
    v = settings(uwsgi_harakiri=0, uwsgi_max_requests=0, uwsgi_lazy_apps=True, uwsgi_vacuum=False,
                 uwsgi_die_on_term=False, uwsgi_master=False, uwsgi_strict=False)
    opts = _uwsgi_options(render("uwsgi/app.ini.j2", ctx(v)))
    assert "harakiri" not in opts and "post-buffering" not in opts and "max-requests" not in opts
    assert opts["lazy-apps"] == "true"  # the one default this test turns on: the others are on by default
    for key in ("vacuum", "die-on-term", "master", "strict"):
        assert opts[key] == "false"


def test_uwsgi_ini_recycling_and_request_logs_when_asked():
    v = settings(uwsgi_max_requests=5000, uwsgi_max_worker_lifetime=3600, uwsgi_worker_reload_mercy=5,
                 uwsgi_request_logging=True, uwsgi_log_slow=0)
    opts = _uwsgi_options(render("uwsgi/app.ini.j2", ctx(v)))
    assert (opts["max-requests"], opts["max-worker-lifetime"], opts["worker-reload-mercy"]) == ("5000", "3600", "5")
    assert opts["disable-logging"] == "false" and "log-slow" not in opts


def test_uwsgi_ini_refuses_a_tcp_socket():
    v = settings(force={"uwsgi_socket": "0.0.0.0:3031"})
    with pytest.raises(UserError, match="uwsgi_socket must be an absolute unix socket path"):
        render("uwsgi/app.ini.j2", ctx(v))


def test_systemd_unit():
    out = render("systemd/uwsgi-app.service.j2", ctx(settings()))
    body = lines(out)
    for expected in [
        "[Unit]", "[Service]", "[Install]", "Type=notify", "NotifyAccess=all",
        "ExecStart=/usr/bin/uwsgi --ini /etc/uwsgi/apps-provision/model_api.ini",
        "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM", "Restart=on-failure",
        "RuntimeDirectory=model_api", "RuntimeDirectoryMode=0755",
        "EnvironmentFile=/etc/uwsgi/apps-provision/model_api.env", "WantedBy=multi-user.target",
    ]:
        assert expected in body, expected
    assert "provision" in next(line for line in body if line.startswith("Description="))
    assert "SIGQUIT" not in out.split("KillSignal=SIGTERM")[1]


@pytest.mark.parametrize(
    "socket_path, runtime_dir",
    [("/run/shop/uwsgi.sock", "shop"), ("/run/shop/a/b.sock", "shop/a"), ("/srv/x.sock", "model_api"),
     ("/run/x.sock", "model_api")],
)
def test_systemd_runtime_directory_follows_the_socket(socket_path, runtime_dir):
    out = render("systemd/uwsgi-app.service.j2", ctx(settings(uwsgi_socket=socket_path)))
    assert f"RuntimeDirectory={runtime_dir}" in lines(out)


def test_env_file_quoting():
    env = {"PLAIN": "value", "SPACES": "a b  c", "QUOTES": "say \"hi\" 'x'", "DOLLAR": "$HOME ${X}",
           "BACKSLASH": "C:\\path\\", "BACKTICK": "`id`", "EMPTY": "", "HASH": "a#b;c", "UTF8": "naïve"}
    out = render("app/env.j2", ctx(settings(force={"app_env": env})))
    assert lines(out)[len(THREAD_POOLS):] == [
        'BACKSLASH="C:\\\\path\\\\"',
        'BACKTICK="\\`id\\`"',
        'DOLLAR="\\$HOME \\${X}"',
        'EMPTY=""',
        'HASH="a#b;c"',
        'PLAIN="value"',
        'QUOTES="say \\"hi\\" \'x\'"',
        'SPACES="a b  c"',
        'UTF8="naïve"',
    ]


def test_env_file_parsed_back_per_systemd_rules():
    """Read the file back with systemd's EnvironmentFile rules for double-quoted values."""
    env = {"A": 'x\\"$`\\n', "B": "\\ \\t"}
    out = render("app/env.j2", ctx(settings(force={"app_env": env})))
    parsed = {}
    for line in lines(out):
        key, _, raw = line.partition("=")
        assert raw[0] == raw[-1] == '"'
        value, i, raw = "", 0, raw[1:-1]
        while i < len(raw):
            if raw[i] == "\\" and i + 1 < len(raw) and raw[i + 1] in '"\\`$':
                value, i = value + raw[i + 1], i + 2
            else:
                value, i = value + raw[i], i + 1
        parsed[key] = value
    assert parsed == {**dict.fromkeys(THREAD_POOLS, "1"), **env}


def test_env_file_reveals_secrets():
    class Masked(str):
        def __repr__(self):
            return "'******'"

    try:
        from provisioner.config.secret import Secret
    except ImportError:
        Secret = Masked
    out = render("app/env.j2", ctx(settings(force={"app_env": {"TOKEN": Secret("s3cr3t")}})))
    assert 'TOKEN="s3cr3t"' in out


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\0b"])
def test_env_file_refuses_newlines(value):
    with pytest.raises(UserError) as e:
        render("app/env.j2", ctx(settings(force={"app_env": {"KEY": value}})))
    assert "app_env.KEY" in e.value.cause and "newline" in e.value.cause


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "", "A=B"])
def test_env_file_refuses_bad_names(name):
    with pytest.raises(UserError, match="not a valid environment variable name"):
        render("app/env.j2", ctx(settings(force={"app_env": {name: "x"}})))


THREAD_POOLS = ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"]


def test_env_file_sizes_native_thread_pools_to_one():
    """OpenMP's pool does not survive the fork after the master loaded the app (lazy-apps off), and
    uWSGI's workers and threads already use the cores: one thread each unless app_env says otherwise."""
    assert lines(render("app/env.j2", ctx(settings()))) == [f'{name}="1"' for name in THREAD_POOLS]
    out = render("app/env.j2", ctx(settings(force={"app_env": {"OMP_NUM_THREADS": "4"}})))
    assert lines(out) == ['OPENBLAS_NUM_THREADS="1"', 'MKL_NUM_THREADS="1"', 'OMP_NUM_THREADS="4"']


# --- error messages ------------------------------------------------------------------------------


def test_undefined_setting_names_file_line_and_variable(tmp_path):
    (tmp_path / "nginx").mkdir()
    (tmp_path / "nginx" / "t.j2").write_text("a\nb\nlisten {{ v.http_port }} {{ v.foo }};\n")
    with pytest.raises(UserError) as e:
        render("nginx/t.j2", {"v": settings()}, root=tmp_path)
    assert e.value.cause == f"{tmp_path}/nginx/t.j2:3: undefined variable 'v.foo'"
    assert "docs/settings.md" in e.value.fix


def test_undefined_top_level_name(tmp_path):
    (tmp_path / "t.j2").write_text("{% if x %}\n{{ release_dir }}\n{% endif %}\n")
    with pytest.raises(UserError) as e:
        render("t.j2", {"x": True}, root=tmp_path)
    assert e.value.cause == f"{tmp_path}/t.j2:2: undefined variable 'release_dir'"


def test_undefined_in_a_real_template_is_reported_against_templates_dir():
    v = settings()
    del v.client_max_body_size
    with pytest.raises(UserError) as e:
        render("nginx/site.conf.j2", ctx(v))
    line = next(i for i, text in enumerate(
        (TEMPLATES_DIR / "nginx" / "site.conf.j2").read_text().splitlines(), 1)
        if "v.client_max_body_size" in text)
    assert e.value.cause == f"templates/nginx/site.conf.j2:{line}: undefined variable 'v.client_max_body_size'"


def test_missing_context_name_in_a_real_template():
    with pytest.raises(UserError) as e:
        render("uwsgi/app.ini.j2", {"v": settings()})
    assert re.fullmatch(r"templates/uwsgi/app\.ini\.j2:\d+: undefined variable 'main_socket'", e.value.cause)


def test_syntax_error_names_file_and_line(tmp_path):
    (tmp_path / "bad.j2").write_text("ok\n{% if x %}\nno end\n")
    with pytest.raises(UserError, match=r"bad\.j2:3: Unexpected end of template"):
        render("bad.j2", {"x": 1}, root=tmp_path)
    (tmp_path / "bad2.j2").write_text("line\n{{ v. }}\n")
    with pytest.raises(UserError, match=r"bad2\.j2:2: "):
        render("bad2.j2", {}, root=tmp_path)


def test_missing_template(tmp_path):
    with pytest.raises(UserError, match="template not found: templates/nope.j2"):
        render("nope.j2", {})


# --- the real programs ---------------------------------------------------------------------------


def _nginx_conf(prefix: Path, site: Path, port_user: str = "") -> Path:
    """A Debian-like nginx.conf (http block, mime types, gzip on) that includes the site, with
    every path under prefix so no root and no /var/log are needed."""
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    shutil.copy("/etc/nginx/uwsgi_params", prefix / "uwsgi_params")
    conf = prefix / "nginx.conf"
    temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf.write_text(
        f"{port_user}pid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log;\n"
        "events { worker_connections 64; }\n"
        "http {\n    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n"
        f"    access_log {prefix}/logs/access.log;\n{temp}\n    gzip on;\n"
        f"    include {site};\n}}\n"
    )
    return conf


def _site_for_test(v, prefix: Path, listen: str | None = None) -> Path:
    text = render("nginx/site.conf.j2", ctx(v)).replace("/var/log/nginx/", f"{prefix}/logs/")
    if listen:
        text = text.replace(f"listen {v.http_port} ", f"listen {listen} ")
    site = prefix / "site.conf"
    site.write_text(text)
    return site


def _nginx_t(conf: Path, prefix: Path) -> subprocess.CompletedProcess:
    return subprocess.run([NGINX, "-t", "-p", str(prefix), "-c", str(conf), "-e",
                           str(prefix / "logs" / "error.log")], capture_output=True, text=True)


@needs_nginx
@pytest.mark.parametrize(
    "over",
    [
        {},
        {"http_port": 8080, "server_name": "api.example.com www.example.com", "static_expires": "off",
         "uwsgi_harakiri": 0, "static_url": "/assets/", "client_max_body_size": "512k",
         "nginx_extra_config": "location = /ping {\n  return 200 'pong';\n}\nlimit_req_status 429;\n"},
    ],
    ids=["defaults", "non-defaults"],
)
def test_nginx_accepts_the_site(tmp_path, over):
    v = settings(**over)
    site = _site_for_test(v, tmp_path)
    proc = _nginx_t(_nginx_conf(tmp_path, site), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "test is successful" in proc.stderr
    assert "[warn]" not in proc.stderr, proc.stderr


@needs_nginx
def test_nginx_rejects_broken_extra_config(tmp_path):
    """The check is real: a bad nginx_extra_config fails `nginx -t`."""
    site = _site_for_test(settings(nginx_extra_config="no_such_directive on;"), tmp_path)
    proc = _nginx_t(_nginx_conf(tmp_path, site), tmp_path)
    assert proc.returncode != 0 and "unknown directive" in proc.stderr


def _missing_release(v, tmp_path: Path) -> dict:
    """The ini's context with an app root that does not exist: uWSGI stops at chdir, after the config check."""
    return {**ctx(v), "paths": Layout(v.app_name, str(tmp_path / "missing"))}


def _uwsgi_parse(ini: Path, section: str = "") -> str:
    """uWSGI parses the whole ini (strict mode included) before it chdirs: with a release dir that
    does not exist, it stops right after the config check, so no server starts."""
    proc = subprocess.run([UWSGI, "--ini", f"{ini}{section}"], capture_output=True, text=True, timeout=20,
                          cwd=ini.parent)
    return proc.stdout + proc.stderr


@needs_uwsgi
@pytest.mark.parametrize(
    "over",
    [{}, {"uwsgi_harakiri": 0, "uwsgi_max_requests": 0, "uwsgi_lazy_apps": True,
          "uwsgi_master": False, "uwsgi_vacuum": False, "uwsgi_die_on_term": False},
     {"uwsgi_max_requests": 5000, "uwsgi_max_worker_lifetime": 3600, "uwsgi_request_logging": True,
      "uwsgi_log_slow": 0}],
    ids=["defaults", "switched-off", "recycling-and-request-logs"],
)
def test_uwsgi_strict_mode_accepts_the_ini(tmp_path, over):
    v = settings(**over)
    ini = tmp_path / "app.ini"
    ini.write_text(render("uwsgi/app.ini.j2", _missing_release(v, tmp_path)))
    for section in ("", ":standby"):  # the unit, a restart's standby
        out = _uwsgi_parse(ini, section)
        assert "unknown config directive" not in out, out
        assert f"chdir() to {tmp_path}/missing/current/app" in out, out  # got past the config check


@needs_uwsgi
def test_uwsgi_strict_check_is_real(tmp_path):
    v = settings()
    text = render("uwsgi/app.ini.j2", _missing_release(v, tmp_path))
    ini = tmp_path / "app.ini"
    ini.write_text(text.replace("buffer-size", "bufer-size"))
    assert "[strict-mode] unknown config directive: bufer-size" in _uwsgi_parse(ini)


# --- end to end: a release of the example app served by real uWSGI behind real nginx --------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    detail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{detail}")


def _request(port: int, method: str, path: str, body: bytes | None = None,
             headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()} | {
            "_all": r.getheaders()}, r.read()
    finally:
        conn.close()


PROBE = '''"""Test-only WSGI entry: /_probe echoes what uWSGI hands the app, the rest is the example app."""
import json
from model_api.wsgi import app as model_app


def app(environ, start_response):
    if environ["PATH_INFO"] != "/_probe":
        return model_app(environ, start_response)
    keys = {k: v for k, v in environ.items() if isinstance(v, str)}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(keys).encode()]
'''


@needs_nginx
@needs_uwsgi
@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs Debian's /usr/bin/python3")
def test_example_release_served_by_uwsgi_behind_nginx(tmp_path):
    """Build a release, install it the way the engine does (venv from /usr/bin/python3, offline pip
    from the wheelhouse), render ini + site, start uWSGI and nginx on 127.0.0.1, and check the
    facts: app answers through the socket, static files, headers, no scheme spoofing, Host port."""
    from provisioner.resources import SystemFacts
    from provisioner.resources.release_build import PYTHON_FOR

    from local_app_root import LocalAppRoot

    pyver = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    os_id, os_version = next(os_ for os_, python in PYTHON_FOR.items() if python == pyver)
    app_src = tmp_path / "src"
    shutil.copytree(PROJECT_ROOT / "examples" / "model_api", app_src,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (app_src / "probe_wsgi.py").write_text(PROBE)
    app_root = tmp_path / "srv"
    local = LocalAppRoot(app_root, SystemFacts(os_id=os_id, os_version=os_version, machine=os.uname().machine))
    local.deploy(app_src)
    release_id = local.release().name

    user = getpass.getuser()
    group = grp.getgrgid(os.getgid()).gr_name
    port = _free_port()
    sock = tmp_path / "run" / "uwsgi.sock"
    sock.parent.mkdir()
    v = settings(app_root=str(app_root), uwsgi_socket=str(sock), http_port=port,
                 app_module="probe_wsgi", uwsgi_processes=1,
                 force={"app_user": user, "app_group": group, "uwsgi_chown_socket": f"{user}:{group}"})
    ini = tmp_path / "app.ini"
    ini.write_text(render("uwsgi/app.ini.j2", ctx(v)))
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    site = _site_for_test(v, prefix, listen=f"127.0.0.1:{port}")
    conf = _nginx_conf(prefix, site, port_user=f"user {user} {group};\n" if os.geteuid() == 0 else "")
    assert _nginx_t(conf, prefix).returncode == 0

    uwsgi_log = tmp_path / "uwsgi.log"
    nginx_proc = None
    with uwsgi_log.open("w") as log:
        sock.symlink_to("uwsgi-main.sock")  # as the unit's ExecStartPre: nginx's socket links to the unit's
        (sock.parent / "stats").mkdir()  # as its other ExecStartPre: the stats sockets' directory
        uwsgi_proc = subprocess.Popen([UWSGI, "--ini", str(ini)], stdout=log, stderr=subprocess.STDOUT,
                                      env={k: val for k, val in os.environ.items()
                                           if k != "NOTIFY_SOCKET"})
    try:
        _wait(lambda: b"WSGI app 0" in uwsgi_log.read_bytes() or uwsgi_proc.poll() is not None,
              30, "uWSGI to load the app", uwsgi_log)
        assert uwsgi_proc.poll() is None, uwsgi_log.read_text()
        assert oct(sock.stat().st_mode & 0o777) == "0o660"
        nginx_proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-e",
                                       str(prefix / "logs" / "error.log"), "-g", "daemon off;"])
        _wait(lambda: _port_open(port) or nginx_proc.poll() is not None, 10, "nginx to listen")
        assert nginx_proc.poll() is None

        status, headers, body = _request(port, "GET", "/healthz")
        assert status == 200, body
        health = json.loads(body)
        assert health["status"] == "ok" and health["release"] == release_id
        for header in SECURITY_HEADERS:
            assert header.lower() in headers
        assert headers["server"] == "nginx"  # server_tokens off: no version

        status, _, body = _request(port, "POST", "/predict", json.dumps(
            {"features": [6.3, 3.3, 6.0, 2.5]}).encode(), {"Content-Type": "application/json"})
        assert status == 200 and json.loads(body)["class"] == "virginica"
        status, _, body = _request(port, "POST", "/predict", b"nope", {"Content-Type": "application/json"})
        assert status == 400 and "error" in json.loads(body)

        status, headers, body = _request(port, "GET", "/static/robots.txt")
        assert status == 200 and body.startswith(b"User-agent")
        cache_control = [val for key, val in headers["_all"] if key.lower() == "cache-control"]
        assert cache_control == ["max-age=604800"]  # exactly one
        for header in SECURITY_HEADERS:
            assert header.lower() in headers
        assert _request(port, "GET", "/static/missing.txt")[0] == 404

        # scheme spoofing closed, X-Forwarded-For set by nginx, Host keeps the client's port
        status, _, body = _request(port, "GET", "/_probe", headers={
            "X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on", "X-Forwarded-For": "6.6.6.6",
            "Host": f"api.example.com:{port}"})
        env = json.loads(body)
        assert env["wsgi.url_scheme"] == "http"
        assert env["HTTP_X_FORWARDED_PROTO"] == "http"
        assert "HTTP_X_FORWARDED_SSL" not in env
        assert env["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"
        assert env["HTTP_HOST"] == f"api.example.com:{port}"
        env = json.loads(_request(port, "GET", "/_probe", headers={"Host": "api.example.com"})[2])
        assert env["HTTP_HOST"] == "api.example.com"

        # gzip for JSON
        status, headers, _ = _request(port, "GET", "/_probe", headers={
            "Accept-Encoding": "gzip", "X-Pad": "y" * 1000})
        assert status == 200 and headers.get("content-encoding") == "gzip"
    finally:
        if nginx_proc is not None:
            nginx_proc.send_signal(signal.SIGQUIT)
            nginx_proc.wait(timeout=10)
        uwsgi_proc.send_signal(signal.SIGTERM)  # what the unit sends; die-on-term makes it final
        try:
            uwsgi_proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            uwsgi_proc.kill()
            uwsgi_proc.wait()
    assert not sock.exists(), "vacuum removes the socket on SIGTERM"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@needs_nginx
def test_main_nginx_conf_passes_nginx_t_with_room_for_two_connections_per_request(tmp_path):
    v = settings(nginx_worker_connections=2048)
    text = render("nginx/nginx.conf.j2", ctx(v))
    assert "worker_connections 2048;" in text and "worker_rlimit_nofile 5120;" in text
    for sub in ("logs", "sites-enabled"):
        (tmp_path / sub).mkdir()
    text = (text.replace("/etc/nginx/sites-enabled/", f"{tmp_path}/sites-enabled/")
                .replace("/var/log/nginx/", f"{tmp_path}/logs/").replace("/run/nginx.pid", f"{tmp_path}/nginx.pid"))
    if os.geteuid() != 0:
        text = text.replace("user www-data;", "")
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    # Debian's prefix: modules-enabled loads modules by paths relative to it.
    proc = subprocess.run([NGINX, "-t", "-c", str(conf), "-e", str(tmp_path / "logs" / "error.log")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
