"""Diagnostic consumers: a raw layer echo and a probe that names the pool that ran it."""
import json
import time

from channels.security.websockets import allowed_hosts_only

from . import identity


@allowed_hosts_only
def echo_connect(message):
    message.reply_channel.send({"accept": True})


def echo_receive(message):
    """Send the frame straight back: the layer round trip without a database ("whoami" names the pool)."""
    text = message.content.get("text")
    if text and text.startswith("burn:"):  # "burn:<ms>:<token>": the benchmark's CPU-heavy consumer
        _burn(int(text.split(":")[1]))
        message.reply_channel.send({"text": text})
    elif text == "whoami":
        message.reply_channel.send({"text": json.dumps(identity.identity())})
    elif text is not None:
        message.reply_channel.send({"text": text})
    else:
        message.reply_channel.send({"bytes": message.content.get("bytes") or b""})


def _burn(milliseconds):
    deadline = time.process_time() + min(milliseconds, 1000) / 1000.0
    while time.process_time() < deadline:
        pass


def page_disconnect(message):
    """Consumer of http.disconnect for pages served through daphne: a client that left before its
    answer. Nothing to clean up, but an unrouted message would be logged as a routing error."""


def probe(message):
    """Answer {pool, pid, release} on the message's reply channel."""
    message.reply_channel.send(identity.identity())
