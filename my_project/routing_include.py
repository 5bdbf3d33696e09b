"""channels' include() for the project's routing, without a deep copy of every message it looks at."""
from channels import routing
from channels.message import Message


class Include(routing.Include):
    """channels' Include deep-copies each message before looking at its prefixes, whether they
    match or not (and an include without prefixes copies too), so that it can strip the matched
    prefix for the routes inside. With five includes that is five deep copies of an http.request
    (its headers are lists of lists) for every page, a fifth of a worker's time on a light one.
    Here nothing is copied until the prefixes match, and then only the top level of the content:
    the prefix stripping replaces top-level values and never changes nested ones. The routes inside
    see the same values either way; the consumer still gets the original message."""

    def match(self, message):
        call_args, stripped = {}, {}
        for name, prefix in self.prefixes.items():
            if name not in message:
                return None
            value = routing.Router.normalise_re_arg(message[name])
            match = prefix.match(value)
            if not match:
                return None
            call_args.update(match.groupdict())
            stripped[name] = value[match.end():]
        if stripped:
            message = Message(dict(message.content, **stripped), message.channel.name,
                              message.channel_layer)
        for entry in self.routing:
            match = entry.match(message)
            if match is not None:
                call_args.update(match[1])
                return match[0], call_args
        return None


include = Include


def lighten(router):
    """Give a channels Router the project's include at its root too: channels' Router wraps the
    routing in its own Include, which deep-copies every message once more before any route looks
    at it (~25 us for a page's headers). The route list is kept: check_default() appends to it."""
    if not isinstance(router.root, Include):
        router.root = Include(router.root.routing)
    return router
