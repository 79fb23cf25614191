"""The deploy report as a person reads it on a 100-column terminal: a service kept off says the state
wanted, and a long reason wraps under its own text, never back to column 0. Piped, a line stays one."""

import io

import pytest
from rich.console import Console

from provisioner.engine.deploy import HostReport
from provisioner.engine.plan import Plan
from provisioner.engine.report import show
from provisioner.engine.status import HostStatus
from provisioner.resources import Packages, Service, SystemFacts

pytestmark = pytest.mark.unit

MISSING = "not installed: " + ", ".join(["python3", "python3-venv", "uwsgi", "uwsgi-plugin-python3", "nginx"]) + \
    " (apt lists are missing: apt-get update first)"


def report_text(terminal: bool) -> str:
    decisions = [Packages(("python3", "python3-venv", "uwsgi", "uwsgi-plugin-python3", "nginx")).decide({}, SystemFacts()),
                 Service("uwsgi", running=False, enabled=False).decide(("enabled", "active"), SystemFacts())]
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=terminal, color_system=None, highlight=False, soft_wrap=True)
    show(console, [HostReport("web1", HostStatus.PENDING, plan=Plan(decisions))], {}, check=True, verbose=False)
    return out.getvalue()


def test_on_a_terminal_a_long_reason_wraps_under_its_text_and_a_stopped_service_reads_as_wanted():
    text = report_text(terminal=True)
    lines = text.splitlines()
    first = next(n for n, line in enumerate(lines) if "packages python3" in line)
    reason = lines[first + 1:first + 3]            # the label leaves too little room: the reason goes under it
    column = len(reason[0]) - len(reason[0].lstrip())
    assert column > 2 and all(line.startswith(" " * column) and line[column] != " " for line in reason), lines
    assert " ".join(line.strip() for line in reason) == MISSING
    assert all(len(line) <= 100 for line in lines), lines
    assert "  would change service uwsgi  wanted disabled at boot and stopped; found enabled, active" in lines


def test_piped_every_entry_stays_one_line():
    assert f"packages python3 python3-venv uwsgi uwsgi-plugin-python3 nginx  {MISSING}" in report_text(terminal=False)
