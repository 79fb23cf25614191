"""Compiled templates are kept across runs (templating._bytecode_cache): a later run loads them without
compiling, a changed template is compiled again, and a cache that cannot be written changes nothing."""

from __future__ import annotations

import jinja2
import pytest

from provisioner import templating

pytestmark = pytest.mark.unit


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A cache of the test's own; each `fresh()` is a new run (a new Environment, as a new process)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "site.j2").write_text("listen {{ port }};\n{% if tls %}ssl on;\n{% endif %}")

    def new_run():
        templating._environment.cache_clear()
        return tmp_path / "t"
    yield new_run
    templating._environment.cache_clear()


def test_a_later_run_loads_the_compiled_template_instead_of_compiling(fresh, monkeypatch):
    assert templating.render("site.j2", {"port": 80, "tls": True}, fresh()) == "listen 80;\nssl on;\n"
    root = fresh()
    monkeypatch.setattr(jinja2.Environment, "compile", lambda *a, **k: pytest.fail("compiled again"))
    assert templating.render("site.j2", {"port": 443, "tls": False}, root) == "listen 443;\n"


def test_a_changed_template_is_compiled_again(fresh):
    root = fresh()
    templating.render("site.j2", {"port": 80, "tls": False}, root)
    (root / "site.j2").write_text("listen [::]:{{ port }};\n")
    assert templating.render("site.j2", {"port": 80, "tls": False}, fresh()) == "listen [::]:80;\n"


def test_errors_name_the_template_line_also_from_the_cache(fresh):
    root = fresh()
    templating.render("site.j2", {"port": 80, "tls": False}, root)
    with pytest.raises(templating.UserError, match=r"site.j2:1: undefined variable 'port'"):
        templating.render("site.j2", {"tls": False}, fresh())


def test_a_cache_that_cannot_be_made_only_costs_a_compile(fresh, tmp_path):
    (tmp_path / "cache").write_text("a file where the cache directory would be")
    assert templating.render("site.j2", {"port": 80, "tls": False}, fresh()) == "listen 80;\n"


def test_a_cache_that_cannot_be_written_only_costs_a_compile(fresh, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(jinja2.bccache.tempfile, "NamedTemporaryFile", disk_full)
    assert templating.render("site.j2", {"port": 80, "tls": False}, fresh()) == "listen 80;\n"
