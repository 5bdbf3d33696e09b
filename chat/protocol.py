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
    kind = frame.get("type")
    if kind == "ping":
        return frame
    if kind == "message":
        return validate_message(frame)
    raise ClientError("unknown_type", "type must be \"message\" or \"ping\"")


def validate_message(frame):
    """The message fields of a frame (or form), checked; ClientError names the first problem, and
    the message's client_id when that one is valid."""
    client_id = frame.get("client_id")
    if not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID:
        client_id = None
    text = frame.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ClientError("invalid_text", "text must be a non-empty string", client_id)
    limit = settings.CHAT_MESSAGE_MAX_LENGTH
    if len(text) > limit:
        raise ClientError("text_too_long", "text is limited to %d characters" % limit, client_id)
    if client_id is None:
        raise ClientError("invalid_client_id", "client_id must be a string of 1-%d characters" % MAX_CLIENT_ID)
    return {"type": "message", "text": text, "client_id": client_id}


def encode(frame):
    """A WebSocket send message carrying `frame` as JSON text."""
    return {"text": json.dumps(frame)}
