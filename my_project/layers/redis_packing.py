"""Redis commands packed by hiredis in C instead of redis-py 2.10's Python loop."""
import hiredis

# redis-py 2.10 packs each command in Python, joining the buffer again for every argument: a group
# send or a batch of a chat message's sends is one EVALSHA with dozens of arguments, and packing it
# took a tenth of a realtime worker's CPU (py-spy, 100 clients). hiredis (already the reply parser)
# packs in C, encoding str as UTF-8, bytes as they are and numbers by repr, as redis-py does. The
# project's layers give their pools a subclass of redis-py's connection class, not a patched one.
_classes = {}


class HiredisPacking(object):
    """Mixed in before a redis-py Connection class: pack_command by hiredis."""

    def pack_command(self, *args):
        command = args[0]
        # 'CONFIG GET' and the like: the server wants the words as separate arguments (as redis-py).
        args = tuple(command.split()) + args[1:] if " " in command else args
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # an argument hiredis does not know (redis-py's Token): redis-py's own way
            return super(HiredisPacking, self).pack_command(*args)


def packing(connection_class):
    """connection_class with its commands packed by hiredis (one class per base, made once)."""
    if issubclass(connection_class, HiredisPacking):
        return connection_class
    if connection_class not in _classes:
        _classes[connection_class] = type("Hiredis" + connection_class.__name__,
                                          (HiredisPacking, connection_class), {})
    return _classes[connection_class]


def pack_with_hiredis(clients):
    """The clients, their pools making hiredis-packing connections from now on; returned."""
    for client in clients:
        pool = client.connection_pool
        pool.connection_class = packing(pool.connection_class)
    return clients
