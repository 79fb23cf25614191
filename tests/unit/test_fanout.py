"""The one fan-out runner (engine/fanout.py): every host's result or error, in the hosts' order, at
most `forks` at once; a bug is not swallowed as a host's error."""

import threading
import time

import pytest

from provisioner.engine.fanout import fan_out
from provisioner.errors import UserError

pytestmark = pytest.mark.unit


def test_each_host_gives_its_value_or_its_error_in_order_and_one_error_stops_no_other():
    def work(name):
        if name == "b":
            raise UserError("b is unreachable", "start b")
        return name.upper()
    finished = []
    results = fan_out(["a", "b", "c"], work, forks=3, finished=lambda r: finished.append(r.host))
    assert [(r.host, r.value, r.error and r.error.cause) for r in results] == [
        ("a", "A", None), ("b", None, "b is unreachable"), ("c", "C", None)]
    assert sorted(finished) == ["a", "b", "c"]


def test_forks_hosts_at_once_and_never_more():
    running, most, lock = [0], [0], threading.Lock()
    together = threading.Barrier(2, timeout=30)   # two hosts must be at work at the same time

    def work(host):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        together.wait()
        with lock:
            running[0] -= 1
    fan_out(list(range(6)), work, forks=2)
    assert most[0] == 2


def test_a_bug_in_the_work_ends_the_run_and_no_host_list_is_empty_work():
    with pytest.raises(ZeroDivisionError):
        fan_out([1, 0], lambda n: 1 / n, forks=2)
    assert fan_out([], lambda n: n, forks=5) == []


def test_after_ctrl_c_the_hosts_not_started_never_start():
    started = []

    def work(host):
        started.append(host)
        if host == 1:
            raise KeyboardInterrupt
        time.sleep(0.5)
    with pytest.raises(KeyboardInterrupt):
        fan_out([1, 2, 3, 4, 5], work, forks=1)
    time.sleep(1.2)   # what the pool would have started meanwhile, had it not been told to stop
    assert started[0] == 1 and 4 not in started and 5 not in started, started
