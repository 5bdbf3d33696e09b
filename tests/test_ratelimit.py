"""The per-socket token bucket."""
import pytest
from django.test import override_settings

from chat.exceptions import ClientError
from chat.ratelimit import admit, spend


@override_settings(CHAT_RATE_BURST=3, CHAT_RATE_PER_SECOND=1.0)
def test_burst_then_refill():
    """A burst of RATE_BURST frames passes, the next is refused, and one second refills one token."""
    session = {}
    for _ in range(3):
        spend(session, now=100.0)
    with pytest.raises(ClientError) as refused:
        spend(session, now=100.0)
    assert refused.value.code == "rate_limited"
    spend(session, now=101.0)


@override_settings(CHAT_RATE_BURST=2, CHAT_RATE_PER_SECOND=4.0)
def test_a_refusal_says_when_a_token_is_back():
    """rate_limited names the refused message and the milliseconds until the next token."""
    session = {}
    spend(session, now=10.0)
    spend(session, now=10.0)
    with pytest.raises(ClientError) as refused:
        spend(session, client_id="m3", now=10.1)
    assert refused.value.as_frame()["client_id"] == "m3"
    assert refused.value.as_frame()["retry_after_ms"] == 150  # 0.6 token short at 4 per second


@override_settings(CHAT_RATE_BURST=2, CHAT_RATE_PER_SECOND=1.0)
def test_later_messages_wait_for_the_refused_one():
    """Once a message is refused, the socket's later messages are refused too, spending nothing,
    until the refused one comes again: stored order is send order."""
    session, admitted = {}, []

    def offer(client_id, now):
        try:
            admit(session, client_id, now=now)
        except ClientError as error:
            return error.as_frame()
        admitted.append(client_id)

    offer("m1", 0.0)
    offer("m2", 0.0)
    assert offer("m3", 0.0)["code"] == "rate_limited"
    refused = offer("m4", 1.5)  # a token is back, but m3 comes first
    assert refused["client_id"] == "m4" and refused["waiting_for"] == "m3" and refused["retry_after_ms"] == 0
    offer("m3", 1.5)
    assert "waiting_for" not in offer("m4", 1.5)  # refused for the rate: it is the one waited for now
    offer("m4", 3.0)
    assert admitted == ["m1", "m2", "m3", "m4"]


@override_settings(CHAT_RATE_BURST=1, CHAT_RATE_PER_SECOND=1.0)
def test_a_refused_copy_of_a_stored_message_is_not_waited_for():
    """A resend of a message stored already (it crossed its ack) refused for want of a token is not
    the one the socket waits for: its client dropped it on the ack and never sends it again, so
    waiting would refuse every later message for good."""
    session = {}
    admit(session, "m1", now=0.0, stored=lambda client_id: False)
    with pytest.raises(ClientError):
        admit(session, "m1", now=0.0, stored=lambda client_id: client_id == "m1")
    admit(session, "m2", now=1.5, stored=lambda client_id: False)  # not refused naming m1
