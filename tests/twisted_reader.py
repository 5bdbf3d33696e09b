"""daphne's read loop over a layer's receive_twisted, in a reactor of its own (one cannot restart within
a pytest process), for the tests to drive on the interface server's Python:

    python -m tests.twisted_reader <layer class in my_project.layers> <its keywords as JSON> <channel>

Prints a JSON line per message read ({"channel", "message"}) and per error that daphne would log and
pause 5 s for ({"error"}); the layer's own log lines go to stderr. Stops after a message holding
"stop", or after LIFETIME seconds. Imports no Django."""
import json
import logging
import sys

from twisted.internet import defer, task

import my_project.layers

LIFETIME = 120  # seconds; the tests kill it earlier


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


@defer.inlineCallbacks
def read(reactor, layer, channel):
    """As daphne's Server.backend_reader_twisted: receive, hand over, and on an error log it and
    wait 5 s."""
    while True:
        try:
            found, message = yield layer.receive_twisted([channel])
        except Exception as exc:
            emit(error="%s: %s" % (type(exc).__name__, exc))
            yield task.deferLater(reactor, 5, lambda: None)
            continue
        if found:
            emit(channel=found, message=message)
            if message.get("stop"):
                return


def main(reactor, class_name, kwargs, channel):
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    layer = getattr(my_project.layers, class_name)(**json.loads(kwargs))
    reactor.callLater(LIFETIME, reactor.stop)
    emit(ready=True)
    return read(reactor, layer, channel)


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
