"""`manage.py rundelay`: channels' delay server, which waits an outage of the layer's server out.

Overrides channels.delay's command (ops comes first in INSTALLED_APPS). Upstream's server exits when
a due message's send raises (its loop has no try), and supervisord restarts it in a loop for as long
as the layer's server is away (a Redis or RabbitMQ restart), until it gives up (FATAL). The message
stays in the database until it is sent (DelayedMessage.send deletes it after the send), so waiting
and trying again loses nothing.
"""
import logging
import time

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from channels.delay import worker
from channels.delay.management.commands import rundelay
from channels.log import setup_logger
from django.core.management import CommandError

logger = logging.getLogger(__name__)


class Worker(worker.Worker):
    """channels' delay Worker, run again after the layer's server was away."""

    RETRY_DELAY = 1.0  # seconds between attempts while the layer's server is away

    def run(self):
        outages = self.channel_layer.OUTAGES
        away_since = None
        while not self.termed:
            try:
                super(Worker, self).run()
            except outages as exc:
                if away_since is None:
                    away_since = time.time()
                    logger.warning("The channel layer is away (%s): the delay server tries again every %.0f s",
                                   exc, self.RETRY_DELAY)
                time.sleep(self.RETRY_DELAY)
                continue
            return


class Command(rundelay.Command):

    def handle(self, *args, **options):
        # Upstream's handle names its Worker itself: its steps, with this Worker.
        self.verbosity = options.get("verbosity", 1)
        self.logger = setup_logger("django.channels", self.verbosity)
        self.channel_layer = channel_layers[options.get("layer", DEFAULT_CHANNEL_LAYER)]
        if self.channel_layer.local_only():
            raise CommandError("You cannot span multiple processes with the in-memory layer: use a "
                               "cross-process channel layer")
        self.logger.info("Running delay against channel layer %s", self.channel_layer)
        try:
            Worker(channel_layer=self.channel_layer, database_sleep_duration=options["sleep"]).run()
        except KeyboardInterrupt:
            pass
        finally:
            self.channel_layer.channel_layer.close()
