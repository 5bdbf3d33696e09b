"""Channel sessions live next to the channel layer (files for IPC, Redis for Redis), not in the database."""
import time
from unittest import mock

import pytest
from channels.test import ChannelTestCase, WSClient
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import override_settings

from my_project.channel_sessions import FileBackend

from .sockets import handshake_headers


@override_settings(CHAT_CHANNEL_SESSION_TTL=60)
def test_file_backend_creates_once_and_expires(tmp_path):
    """Only one of two creators of a key wins; a value older than its time to live is gone."""
    backend = FileBackend(str(tmp_path / "sessions"))
    assert backend.set("k1", "first", 60, only_new=True)
    assert not backend.set("k1", "second", 60, only_new=True)
    assert backend.get("k1") == "first"
    assert backend.set("k1", "third", 60)
    assert backend.get("k1") == "third"
    with mock.patch("my_project.channel_sessions.time.time", return_value=time.time() + 120):
        assert backend.get("k1") is None
        assert backend.set("k1", "fresh", 60, only_new=True)  # an expired key can be created again
    backend.delete("k1")
    assert backend.get("k1") is None
    with pytest.raises(ValueError):
        backend.get("../escape")


@override_settings(CHAT_CHANNEL_SESSION_TTL=60)
def test_file_backend_shares_sessions_with_old_code_during_a_rollout(tmp_path):
    """Sessions moved from the var dir's disk to tmpfs: the newer copy of the two is read, and
    writes reach the old directory too while old-code workers are around (they read only that)."""
    rollout = {"on": True}
    backend = FileBackend(str(tmp_path / "tmpfs"), previous=str(tmp_path / "disk"),
                          old_readers=lambda: rollout["on"])
    old_code = FileBackend(str(tmp_path / "disk"))
    assert old_code.set("k1", "by old code", 60)
    assert backend.get("k1") == "by old code"
    assert backend.set("k1", "by new code", 60)
    assert old_code.get("k1") == "by new code"
    time.sleep(0.01)
    assert old_code.set("k1", "old code again", 60)
    assert backend.get("k1") == "old code again"
    rollout["on"] = False
    assert backend.set("k1", "rollout done", 60)
    assert old_code.get("k1") == "old code again" and backend.get("k1") == "rollout done"
    with mock.patch("my_project.channel_sessions.time.time", return_value=time.time() + 120):
        backend.clear_expired()
    assert not list((tmp_path / "tmpfs").iterdir()) and not list((tmp_path / "disk").iterdir())
    backend.set("k2", "v", 60)
    old_code.set("k2", "v", 60)
    backend.delete("k2")
    assert backend.get("k2") is None and old_code.get("k2") is None


def test_the_layer_store_is_used_when_the_layer_has_one():
    """A layer with the "values" extension keeps the channel sessions (Redis); others get files, in
    tmpfs with the IPC layer (beside its shared memory) and on the var dir's disk otherwise."""
    from my_project import channel_sessions

    class Layer(object):
        extensions = ["groups", "values"]

        def values(self, namespace):
            return ("store of", namespace)

    with mock.patch("channels.channel_layers") as layers:
        layers.__getitem__.return_value.channel_layer = Layer()
        assert channel_sessions._backend() == ("store of", "session")
        Layer.extensions = ["groups"]
        assert isinstance(channel_sessions._backend(), FileBackend)
        assert channel_sessions._backend().previous is None
        Layer.extensions = ["groups", "machine_local"]  # the IPC layer's: sessions move to tmpfs
        Layer.old_code_workers = lambda self: False
        backend = channel_sessions._backend()
        assert backend.directory.startswith("/dev/shm/") and backend.previous.endswith("channel-sessions")


class NoDatabaseSessionTests(ChannelTestCase):
    def test_frames_write_no_database_session(self):
        """A socket's handshake and frames leave the database's sessions as the login left them."""
        user = User.objects.create_user("sid", password="pw-sid-12345")
        client = WSClient(ordered=True)
        client.send_and_consume("websocket.connect", {
            "headers": handshake_headers(user, "http://localhost")}, path="/ws/rooms/lobby/")
        before = Session.objects.count()
        for n in range(3):
            client.send_and_consume("websocket.receive", text={
                "type": "message", "text": "hi %d" % n, "client_id": "c%d" % n}, path="/ws/rooms/lobby/")
        self.assertEqual(Session.objects.count(), before)
        self.assertEqual(before, 1)  # the login's
