"""The socket capacity arithmetic (ops/capacity.py) that nginx's configuration, the preflight check
and `make status` share."""
from ops import capacity

LIMIT = 20000  # these machines' hard descriptor limit per process


def test_nginx_workers_each_hold_at_most_half_their_usable_descriptors():
    """20,000 sockets at 20,000 descriptors need three workers of 9,950 sockets each (two
    descriptors per proxied socket, 100 kept), and every worker's connections are the limit less
    the headroom, not a fixed 8192."""
    planned = capacity.plan(20000, LIMIT, 2)
    assert planned.nginx_workers == 3
    assert planned.worker_connections == 19900
    assert capacity.sockets_per_worker(LIMIT) == 9950
    assert capacity.nginx_sockets(planned) == 29850


def test_one_worker_is_enough_for_a_small_deployment():
    """A deployment of a few thousand sockets keeps a single nginx worker, and an empty limit still
    gets one (nginx needs a worker to say what is wrong)."""
    assert capacity.nginx_workers(3000, LIMIT) == 1
    assert capacity.nginx_workers(9950, LIMIT) == 1
    assert capacity.nginx_workers(9951, LIMIT) == 2
    assert capacity.nginx_workers(100, 50) == 1


def test_the_deployment_holds_the_smaller_of_nginx_and_the_daphnes():
    """Capacity is the tighter of the two sides: one daphne of 19,900 descriptors bounds a
    deployment whose nginx could hold 29,850."""
    planned = capacity.plan(20000, LIMIT, 1)
    assert capacity.daphne_sockets(planned) == 19900
    assert capacity.sockets(planned) == 19900
    assert capacity.sockets(capacity.plan(20000, LIMIT, 2)) == 29850


def test_too_few_daphnes_is_refused_with_the_fix():
    """One daphne cannot hold 20,000 sockets at 20,000 descriptors: the one line names the setting,
    the number of daphnes needed and the way out."""
    assert capacity.problem(capacity.plan(20000, LIMIT, 1)) == (
        "CHAT_MAX_SOCKETS=20000 needs 2 daphne processes at 19,900 descriptors each: set DAPHNE_PROCS=2 "
        "or lower MAX_SOCKETS")
    assert capacity.problem(capacity.plan(20000, LIMIT, 2)) is None
    assert capacity.problem(capacity.plan(19900, LIMIT, 1)) is None


def test_a_reply_list_smaller_than_a_room_is_refused():
    """A daphne's reply list below CHAT_MAX_SOCKETS would drop a broadcast's replies to a room of
    that size (silently, the groups extension allows it): refused, the fix given."""
    found = capacity.problem(capacity.plan(20000, LIMIT, 2), response_capacity=5000)
    assert found.startswith("CHAT_RESPONSE_CAPACITY=5000 is below CHAT_MAX_SOCKETS=20000")
    assert "set RESPONSE_CAPACITY=40000" in found
    assert capacity.problem(capacity.plan(20000, LIMIT, 2), response_capacity=40000) is None


def test_a_limit_within_the_headroom_holds_nothing():
    """A descriptor limit no larger than the headroom leaves no socket: the fix is the limit itself."""
    found = capacity.problem(capacity.plan(10, 100, 2))
    assert "raise the hard limit" in found


def test_describe_is_one_line_with_both_sides():
    """`make status`'s line: the capacity, nginx's workers x connections, the daphnes x descriptors."""
    line = capacity.describe(capacity.plan(20000, LIMIT, 2))
    assert "\n" not in line
    assert line.startswith("Socket capacity 29,850 (CHAT_MAX_SOCKETS 20,000)")
    assert "nginx 3 workers x 19,900 connections = 29,850 sockets" in line
    assert "daphne 2 processes x 19,900 descriptors = 39,800 sockets" in line
