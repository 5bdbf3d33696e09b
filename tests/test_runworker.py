"""The project's runworker: what it adds around each consumer."""
from unittest import mock

import pytest
from channels.exceptions import ConsumeLater

from ops.management.commands import runworker


@mock.patch.object(runworker.time, "sleep")
def test_a_worker_whose_consumer_raised_pauses_before_its_next_message(sleep):
    """A consumer's exception still reaches the worker loop, after FAILED_PAUSE: an idle healthy
    worker takes the client's immediate resend rather than the one that just failed."""
    with pytest.raises(RuntimeError):
        runworker.pause_after_failure(mock.Mock(side_effect=RuntimeError("bad release")))("message")
    sleep.assert_called_once_with(runworker.FAILED_PAUSE)


@mock.patch.object(runworker.time, "sleep")
def test_no_pause_after_success_or_the_worker_loop_own_control_flow(sleep):
    """A consumer that returns, or asks channels to run the message later, costs no pause."""
    assert runworker.pause_after_failure(mock.Mock(return_value=1))("message") == 1
    with pytest.raises(ConsumeLater):
        runworker.pause_after_failure(mock.Mock(side_effect=ConsumeLater()))("message")
    sleep.assert_not_called()
