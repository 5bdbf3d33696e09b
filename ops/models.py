"""Health counters each worker process publishes about itself."""
import datetime

from django.db import models
from django.utils import timezone

# A row not refreshed for this long belongs to a worker that is gone.
STALE_AFTER = datetime.timedelta(seconds=15)


class WorkerStatsQuerySet(models.QuerySet):
    def live(self):
        return self.filter(updated__gte=timezone.now() - STALE_AFTER)


class WorkerStats(models.Model):
    """Counters of one runworker process since it started, refreshed about once a second."""
    key = models.CharField(max_length=100, primary_key=True)  # host:pid
    host = models.CharField(max_length=100)
    pid = models.IntegerField()
    pool = models.CharField(max_length=30)
    release = models.CharField(max_length=100)
    consumed = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    busy_seconds = models.FloatField(default=0.0)
    started = models.DateTimeField()
    updated = models.DateTimeField(db_index=True)

    objects = WorkerStatsQuerySet.as_manager()

    class Meta:
        ordering = ("pool", "pid")
