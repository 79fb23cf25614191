"""The labs' and bench's one wait loop (labs/common.py wait_until)."""

import pytest

from provisioner.labs.common import wait_until

pytestmark = pytest.mark.unit


def test_the_first_true_answer_comes_back_and_time_running_out_is_none():
    answers = iter([None, 0, "", 1234])
    assert wait_until(lambda: next(answers), 30, every=0) == 1234
    asked = []
    assert wait_until(lambda: asked.append(1), 0.05, every=0.01) is None
    assert len(asked) >= 2, "asked until the time ran out"


def test_asked_once_even_with_no_time_and_an_exception_gives_up_at_once():
    assert wait_until(lambda: "up", 0) == "up"
    with pytest.raises(RuntimeError):
        wait_until(lambda: (_ for _ in ()).throw(RuntimeError("host exited")), 30)
