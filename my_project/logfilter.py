"""A logging filter that escapes control characters, so a client's text cannot forge log lines."""
import logging
import re

# C0 (newline, carriage return, tab, escape...), DEL, C1 (\x85 is a line break to some readers) and
# Unicode's line and paragraph separators.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text):
    """text with every control character written as an escape (\\n, \\x0b, \\u2028)."""
    def written(match):
        char = match.group()
        return NAMED.get(char) or ("\\x%02x" % ord(char) if ord(char) < 0x100 else "\\u%04x" % ord(char))
    return CONTROL.sub(written, text)


class EscapeControlCharacters(logging.Filter):
    """A handler's filter: the record's message, formatted with its arguments, control characters
    escaped (CVE-2025-48432: Django 1.11 logs `Not Found: <path>` with the path decoded, so
    /x%0AFORGED wrote a second line). A traceback the formatter appends keeps its own lines."""

    def filter(self, record):
        message = record.getMessage()
        escaped = escape(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


def install(logger=None):
    """Add the filter to every handler of a logger (the root's by default): for processes that
    configure logging with basicConfig rather than settings.LOGGING."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(EscapeControlCharacters())
