"""Operations of the deployment: health, diagnostics, process control."""
import os

from django.apps import AppConfig
from django.conf import settings
from django.db.backends.signals import connection_created


def _tune_sqlite(sender, connection, **kwargs):
    # WAL lets readers run while a worker writes; without it every page waits on every insert.
    if connection.vendor == "sqlite":
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")


class OpsConfig(AppConfig):
    """Wires the per-connection database tuning; makes the directory of an SQLite database."""
    name = "ops"

    def ready(self):
        database = settings.DATABASES["default"]
        if database["ENGINE"].endswith("sqlite3"):  # SQLite creates the file, not its directory
            os.makedirs(os.path.dirname(os.path.abspath(database["NAME"])), exist_ok=True)
        connection_created.connect(_tune_sqlite, dispatch_uid="ops.tune_sqlite")
