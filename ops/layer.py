"""What is waiting in the channel layer: depth of every non-empty channel, for the status view."""
import time


def depths(layer):
    """{channel: messages waiting} for every non-empty channel of an asgi_ipc or asgi_redis layer."""
    if hasattr(layer, "message_store"):  # asgi_ipc: one pickled dict in shared memory
        now = time.time()
        value = layer.message_store.get_value()
        return {name: sum(1 for _, expiry in items if expiry >= now)
                for name, items in value.items() if items}
    if hasattr(layer, "_connection_list"):  # asgi_redis: one list per channel on its shard
        found = {}
        prefix = layer.prefix
        for connection in layer._connection_list:
            for key in connection.scan_iter(match=prefix + "*", count=1000):
                if connection.type(key) == b"list":
                    name = key.decode()[len(prefix):]
                    found[name] = found.get(name, 0) + connection.llen(key)
        return found
    raise TypeError("cannot inspect a %s" % type(layer).__name__)
