"""Parsing and validation of the JSON frames clients send; every failure is a ClientError code."""
import json

from django.conf import settings

from .exceptions import ClientError

# The WebSocket subprotocol naming this version of the frames (the page offers it; daphne accepts
# the versions in CHAT_WS_PROTOCOLS).
VERSION = "chat.v1"
MAX_FRAME_BYTES = 16 * 1024
MAX_DEPTH = 8
MAX_CLIENT_ID = 64
MAX_ID = 2 ** 31 - 1  # ids are 32-bit columns: a larger one is malformed, not a database error


def _depth(text):
    """Nesting depth of a JSON text, counted before parsing so a deep one never reaches json.loads."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse(text):
    """The frame as a dict with a known `type`, or ClientError."""
    if text is None:
        raise ClientError("binary_frame", "send JSON text frames, not binary ones")
    if len(text.encode("utf-8")) > MAX_FRAME_BYTES:
        raise ClientError("frame_too_large", "frames are limited to %d bytes" % MAX_FRAME_BYTES)
    if _depth(text) > MAX_DEPTH:
        raise ClientError("too_deep", "JSON nested deeper than %d levels" % MAX_DEPTH)
    try:
        frame = json.loads(text)
    except ValueError:
        raise ClientError("invalid_json", "the frame is not valid JSON")
    if not isinstance(frame, dict):
        raise ClientError("not_an_object", "the frame must be a JSON object")
    if frame.get("type") == "ping":
        return frame
    return validate(frame)


# What a client may send besides pings: a message, an edit or a delete of one (changes, answered by
# an ack), and a read mark.
CHANGES = ("message", "edit", "delete")
TYPES = CHANGES + ("read", "ping")


def validate(frame):
    """A frame (or a form's fields) of a type in TYPES but ping, checked: ClientError names the first
    problem, and the change's client_id when that one is valid."""
    kind = frame.get("type")
    if kind == "read":
        return {"type": "read", "id": _id(frame, None, minimum=0)}
    if kind not in CHANGES:
        raise ClientError("unknown_type", "type must be one of %s" % ", ".join('"%s"' % t for t in TYPES))
    client_id = frame.get("client_id")
    if not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID:
        client_id = None
    checked = {"type": kind}
    if kind != "message":
        checked["id"] = _id(frame, client_id)
    if kind != "delete":
        checked["text"] = _text(frame, client_id)
    if client_id is None:
        raise ClientError("invalid_client_id", "client_id must be a string of 1-%d characters" % MAX_CLIENT_ID)
    checked["client_id"] = client_id
    return checked


def _id(frame, client_id, minimum=1):
    """The `id` a frame names (a message's place in the room), as an int."""
    value = frame.get("id")
    if isinstance(value, str) and value.isdigit():  # a form's field
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= MAX_ID:
        raise ClientError("invalid_id", "id must be an integer of at least %d" % minimum, client_id)
    return value


def _text(frame, client_id):
    text = frame.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ClientError("invalid_text", "text must be a non-empty string", client_id)
    limit = settings.CHAT_MESSAGE_MAX_LENGTH
    if len(text) > limit:
        raise ClientError("text_too_long", "text is limited to %d characters" % limit, client_id)
    return text


def encode(frame):
    """A WebSocket send message carrying `frame` as JSON text."""
    return {"text": json.dumps(frame)}
