"""The per-socket token bucket."""
import pytest
from django.test import override_settings

from chat.exceptions import ClientError
from chat.ratelimit import spend


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
