"""Findings: how `status` and `doctor` read what the stack's scripts print."""

import pytest

from provisioner.engine.findings import Finding, Level, parse

pytestmark = pytest.mark.unit


def test_findings_and_plain_lines_are_told_apart():
    out = ("nginx: active 1.22.1\n"
           "fail\tworkers\tno live uWSGI worker (2 defunct, 0 stopped)\tsystemctl restart uwsgi-x\n"
           "ok\tqueue\t0 of 1024 connections waiting\t\n"
           "\n"
           "bogus\tnot\ta finding\t\n")
    found, lines = parse(out)
    assert found == [Finding(Level.FAIL, "workers", "no live uWSGI worker (2 defunct, 0 stopped)",
                             "systemctl restart uwsgi-x"),
                     Finding(Level.OK, "queue", "0 of 1024 connections waiting", "")]
    assert lines == ["nginx: active 1.22.1", "bogus\tnot\ta finding\t"]
