"""The WAF (waf, waf_paranoia, waf_exclusions): a real nginx with Debian's ModSecurity module and the
OWASP CRS in front of a small app: probes blocked (403 JSON) and logged by rule id in block mode,
logged only in detect mode, a normal POST /predict through in both.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from provisioner.errors import UserError
from provisioner.templating import render
from roles import front
from tests.unit.test_cache_templates import CountingApp
from tests.unit.test_front_templates import serving
from tests.unit.test_templates import _free_port, _request, _wait, ctx, needs_nginx, settings

pytestmark = pytest.mark.unit

MODULE = Path("/usr/lib/nginx/modules/ngx_http_modsecurity_module.so")
needs_modsecurity = pytest.mark.skipif(
    not MODULE.exists() or not Path("/usr/share/modsecurity-crs/rules").is_dir(),
    reason="ModSecurity missing: apt-get install libnginx-mod-http-modsecurity modsecurity-crs")
SQLI = "/predict?id=" + quote("1' OR '1'='1")
XSS = "/predict?q=" + quote("<script>alert(1)</script>")
PREDICT = json.dumps({"features": [5.1, 3.5, 1.4, 0.2]}).encode()


def test_waf_settings():
    assert settings(waf=False).waf == "off"   # YAML's unquoted off
    for raw, words in [({"waf": "on"}, "must be off, detect or block"),
                       ({"waf_paranoia": 5}, "must be an integer from 1 to 4"),
                       ({"waf_exclusions": ["942100"]}, "must be a list of ModSecurity rule ids")]:
        with pytest.raises(UserError, match=words):
            settings(**raw)


def test_the_rules_file_says_mode_paranoia_and_exclusions():
    v = settings(waf="detect", waf_paranoia=2, waf_exclusions=[920350, 942100])
    text = render("nginx/modsecurity.conf.j2", ctx(v))
    assert "SecRuleEngine DetectionOnly" in text and "setvar:tx.paranoia_level=2" in text
    assert "SecRuleRemoveById 920350\nSecRuleRemoveById 942100\n" in text
    assert text.index("crs-setup.conf") < text.index("paranoia_level") < text.index("rules/*.conf")
    site = render("nginx/site.conf.j2", ctx(v))
    assert f"modsecurity_rules_file {front.waf_rules_file(v)};" in site
    assert "modsecurity" not in render("nginx/site.conf.j2", ctx(settings()))


def _waf_site(tmp_path: Path, mode: str) -> tuple[int, str, Path]:
    """The site with its WAF rules file under tmp_path: (port, site text, the WAF log nginx will write)."""
    port = _free_port()
    v = settings(waf=mode, http_port=port, uwsgi_socket=str(tmp_path / "app.sock"))
    rules = tmp_path / "modsec.conf"
    rules.write_text(render("nginx/modsecurity.conf.j2", ctx(v)))
    site = render("nginx/site.conf.j2", ctx(v)).replace(front.waf_rules_file(v), str(rules))
    return port, site, tmp_path / "nginx" / "logs" / "model_api.waf.log"


@pytest.fixture
def app(tmp_path):
    app = CountingApp(tmp_path / "app.sock")
    yield app
    app.sock.close()


def _rule_ids(log: Path) -> set[str]:
    return set(re.findall(r'\[id "(\d+)"\]', log.read_text())) if log.exists() else set()


@needs_nginx
@needs_modsecurity
@pytest.mark.parametrize("mode", ["block", "detect"])
def test_probes_are_blocked_or_logged_by_rule_id_and_a_normal_post_passes(tmp_path, app, mode):
    port, site, log = _waf_site(tmp_path, mode)
    with serving(tmp_path / "nginx", site, port, head=f"load_module {MODULE};\n"):
        post = _request(port, "POST", "/predict", PREDICT, {"Content-Type": "application/json"})
        assert post[0] == 200, post
        sqli, xss = _request(port, "GET", SQLI), _request(port, "GET", XSS)
        _wait(lambda: {"942100", "941100"} <= _rule_ids(log), 10, "the WAF log to name the rules", log)
    if mode == "block":
        for status, headers, body in (sqli, xss):
            assert (status, headers["content-type"], json.loads(body)["error"]) == (403, "application/json", "forbidden")
    else:
        assert (sqli[0], xss[0]) == (200, 200)
    assert "942100" in _rule_ids(log) and "941100" in _rule_ids(log)   # SQL injection (libinjection), XSS
