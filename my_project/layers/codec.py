"""How the project's layers encode a message: msgpack, readable by msgpack 0.5 and 1.x alike."""
import msgpack


def pack(message):
    """bytes of a message dict; str and bytes values stay apart (msgpack's bin type)."""
    return msgpack.packb(message, use_bin_type=True)


def unpack(data):
    """The message dict back. raw=False (msgpack >= 0.5.2) where upstream passes encoding="utf8",
    which msgpack 1.x no longer takes: the workers keep msgpack-python 0.5 (3.7), the interface
    server runs a maintained msgpack with its C extension, and both read what the other wrote."""
    return msgpack.unpackb(data, raw=False)
