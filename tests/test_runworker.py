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


@mock.patch.object(runworker.time, "sleep")
def test_a_worker_waits_an_outage_of_the_layer_out(sleep):
    """While the layer's server is away the worker's receive answers nothing after OUTAGE_RETRY,
    instead of raising out of the worker loop (which ended the process); then it receives again."""
    receive_many = mock.Mock(side_effect=[ConnectionError("refused"), ConnectionError("refused"),
                                          ("websocket.receive", {"text": "hi"})])
    receive = runworker.outlast_outages(receive_many, (ConnectionError,))
    assert receive(["websocket.receive"], block=True) == (None, None)
    assert receive(["websocket.receive"], block=True) == (None, None)
    assert receive(["websocket.receive"], block=True) == ("websocket.receive", {"text": "hi"})
    assert sleep.call_args_list == [mock.call(runworker.OUTAGE_RETRY)] * 2


def test_other_errors_still_end_the_worker():
    """Only the layer's named outages are waited out: anything else still raises."""
    receive = runworker.outlast_outages(mock.Mock(side_effect=KeyError("bug")), (ConnectionError,))
    with pytest.raises(KeyError):
        receive(["websocket.receive"])


def test_a_worker_without_a_writable_run_dir_still_starts(tmpdir):
    """No in-flight record (the directory cannot be made) is a warning, not a worker that cannot start."""
    blocked = tmpdir.join("file")
    blocked.write("")
    paths = mock.Mock(inflight=str(blocked.join("inflight")))
    with mock.patch.dict(runworker.os.environ, SUPERVISOR_PROCESS_NAME="workers-realtime_00"), \
            mock.patch.object(runworker.settings, "CHAT_PATHS", paths), \
            mock.patch.object(runworker.programs, "started_here", return_value=[runworker.programs.named("reclaim")]):
        assert runworker.in_flight_record() is None
