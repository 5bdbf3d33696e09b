"""msgpack-python, the name asgi_redis and asgi_ipc require, standing for msgpack (its new name).

msgpack-python 0.5.6, their pin, builds no C extension on CPython 3.11+, and any msgpack 1.x
installed beside it overwrites its module anyway. The interface server installs a maintained
msgpack with this empty distribution naming the old name, so pip check and asgi_ipc's
pkg_resources.require() find what they ask for. Installed from here by bin/setup-interface.
"""
from setuptools import setup

setup(
    name="msgpack-python",
    version="0.5.6+msgpack",
    description="Transitional: msgpack-python's name for msgpack (installed in venv-interface/)",
    install_requires=["msgpack>=1.0"],
    py_modules=[],
)
