"""`make status` (ops/management/commands/status.py): the deployment's socket capacity in one line."""
import io
from unittest import mock

from django.core.management import call_command

from ops import capacity
from ops.management.commands import status


def test_status_says_the_socket_capacity_computed_at_start():
    """Right under the deployment's line, status prints the capacity ops/capacity.py computes from
    the descriptor limit: nginx's workers x connections and the daphnes x descriptors."""
    out = io.StringIO()
    planned = capacity.plan(20000, 20000, 2)
    with mock.patch.object(capacity, "current", return_value=planned), \
            mock.patch.object(status.runner, "describe", return_value=None), \
            mock.patch.object(status.supervisor, "alive", return_value=False), \
            mock.patch.object(status.Command, "workers"), mock.patch.object(status.Command, "channels"):
        call_command("status", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[1] == capacity.describe(planned)
    assert "nginx 3 workers x 19,900 connections" in lines[1]
