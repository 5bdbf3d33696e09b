"""`manage.py rollout RELEASE` (`make rollout RELEASE=...`): staged restart of the worker pools onto a
release, canaries first; exit status 1 when it aborted and rolled back."""
from django.conf import settings
from django.core.management.base import BaseCommand

from ops import releases, supervisor
from ops.rollout import POOLS, Rollout, RolloutAborted, worker_hosts


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("release", help="a release made with `manage.py release create`")
        parser.add_argument("--pools", default=",".join(POOLS), help="comma-separated, in order")
        parser.add_argument("--canary", type=int, default=1, help="workers per pool to try first")
        parser.add_argument("--window", type=float, default=20.0, help="seconds to watch the canaries")
        parser.add_argument("--batch", type=int, default=1, help="workers restarted at a time after")
        parser.add_argument("--max-error-rate", type=float, default=0.02,
                            help="canary consumer error rate that aborts (and twice the old rate)")
        parser.add_argument("--max-latency-ratio", type=float, default=3.0,
                            help="canary mean handling time over the old workers' that aborts")
        parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")

    def handle(self, *args, **options):
        if not settings.CHAT_NETWORK.worker_hosts and not supervisor.alive(settings.CHAT_PATHS.supervisor_socket):
            raise SystemExit("error: no deployment is running from this checkout (start it with `make run`)")
        pools = [p for p in options["pools"].split(",") if p]
        unknown = set(pools) - set(POOLS)
        if unknown:
            raise SystemExit("error: unknown pools %s; choose from %s" % (sorted(unknown), ", ".join(POOLS)))
        try:
            releases.path(options["release"])
            if options["release"] not in releases.available():
                raise releases.ReleaseError("no release %s: create it with `manage.py release create %s`"
                                            % (options["release"], options["release"]))
            Rollout(worker_hosts(), options["release"], pools=pools, canary=options["canary"],
                    window=options["window"], batch=options["batch"],
                    max_error_rate=options["max_error_rate"],
                    max_latency_ratio=options["max_latency_ratio"], dry_run=options["dry_run"],
                    out=lambda line: (self.stdout.write(line), self.stdout.flush())).run()
        except releases.ReleaseError as exc:
            raise SystemExit("error: %s" % exc)
        except RolloutAborted as exc:
            raise SystemExit("rollout aborted and rolled back: %s" % exc)
