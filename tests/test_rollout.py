"""The rollout's verdict on a canary against the old workers of its pool."""
from ops.rollout import SILENT_CANARY, Totals, verdict


def totals(consumed, errors=0, busy=0.0):
    out = Totals()
    out.consumed, out.errors, out.busy = consumed, errors, busy
    return out


def judge(canary, old, beside=True):
    return verdict("workers-realtime", canary, old, max_error_rate=0.05, max_latency_ratio=3.0, beside=beside)


def test_a_healthy_canary_passes():
    """Errors and latency like the old workers' pass."""
    assert judge(totals(100, 1, 0.1), totals(100, 1, 0.1)) is None


def test_a_failing_canary_is_stopped():
    """Past the error limit (and twice the old rate) the canary fails, naming its rate."""
    assert "error rate 50.0%" in judge(totals(10, 5), totals(100, 0))


def test_a_slow_canary_is_stopped():
    """A canary handling messages far slower than the old workers fails."""
    assert "ms" in judge(totals(100, 0, 2.0), totals(100, 0, 0.1))


def test_a_silent_canary_beside_busy_old_workers_is_stopped():
    """A canary that handled nothing while the old workers of its pool handled their traffic is not
    taking its share (a release broken before its consumer counts): stopped, not waved through."""
    assert "handled no message" in judge(totals(0), totals(SILENT_CANARY))


def test_a_quiet_pool_passes_on_staying_up():
    """No traffic at all, or a pool whose every worker is a canary: nothing to compare with."""
    assert judge(totals(0), totals(0)) is None
    assert judge(totals(0), totals(500), beside=False) is None
