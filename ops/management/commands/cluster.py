"""`manage.py cluster` (`make cluster`): the deployment over ten hosts, each a network namespace of
this machine, until interrupted."""
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from ops.cluster.plan import LAYOUTS, Plan
from ops.cluster.runner import Cluster, describe, root
from ops.deployment import die_with_parent
from ops.exceptions import DeploymentError


class Command(BaseCommand):
    help = ("Run the chat on a balancer, 2 interface, 2 worker, 1 web, 3 Redis and 1 PostgreSQL host, "
            "each in a network namespace of this machine (root), until interrupted.")

    def add_arguments(self, parser):
        parser.add_argument("--layout", choices=LAYOUTS, default="sharded",
                            help="the Redis hosts as three shards, or a master, two replicas and Sentinels")

    def handle(self, *args, **options):
        die_with_parent()
        stopping = []
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda *_: stopping.append(True))
        cluster = Cluster(Plan(root(), options["layout"], settings.CHAT_PORT))
        try:
            cluster.start(stopping)
            self.stdout.write("\n".join(describe(root())))
            self.stdout.write("Cluster is up: http://127.0.0.1:%d (logs in %s/<host>/log). Ctrl-C stops it all."
                              % (settings.CHAT_PORT, root()))
            self.stdout.flush()
            while not stopping and not cluster.failed():
                time.sleep(0.2)
            if cluster.failed() and not stopping:
                raise DeploymentError("host %s stopped: see %s/%s.out" % (
                    cluster.failed(), root(), cluster.failed()))
        except DeploymentError as exc:
            raise SystemExit("error: %s" % exc)
        finally:
            if cluster.owned:  # nothing to stop when a check failed first
                self.stdout.write("Stopping every host of the cluster...")
                self.stdout.flush()
                cluster.stop()
                self.stdout.write("Stopped.")
