"""Operations of the deployment: health, diagnostics, process control."""
from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _tune_sqlite(sender, connection, **kwargs):
    # WAL lets readers run while a worker writes; without it every page waits on every insert.
    if connection.vendor == "sqlite":
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")


class OpsConfig(AppConfig):
    """Wires the per-connection database tuning."""
    name = "ops"

    def ready(self):
        connection_created.connect(_tune_sqlite, dispatch_uid="ops.tune_sqlite")
