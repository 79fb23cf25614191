"""A deploy's progress: one line per host on a terminal (never cut at its width), plain lines elsewhere."""

import io

import pytest
from rich.console import Console

from provisioner import cli_common as cli

pytestmark = pytest.mark.unit


def test_on_a_terminal_each_host_has_its_own_line_redrawn_in_place(monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=screen, force_terminal=True, width=30, soft_wrap=True))
    with cli._progress() as progress:
        progress("web1", "connecting")
        progress("web2", "reading facts")
        progress("web1", "applying 3 change(s)")
    last_frame = screen.getvalue().rsplit("\x1b[0m ", 1)[1]
    assert last_frame.startswith("web1: applying 3 change(s)\nweb2: reading facts\n")


def test_off_a_terminal_every_event_is_a_plain_line_as_it_happens(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=log, force_terminal=False, soft_wrap=True))
    with cli._progress() as progress:
        progress("web1", "connecting")
        assert log.getvalue() == "web1: connecting\n"
        progress("web1", "[applying] 1 change(s)")
    assert log.getvalue().splitlines() == ["web1: connecting", "web1: [applying] 1 change(s)"]
