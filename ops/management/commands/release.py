"""`manage.py release create NAME [--from DIR]` / `manage.py release list`: worker code releases."""
from django.core.management.base import BaseCommand

from ops import releases


class Command(BaseCommand):
    help = "Create a release (a copy of the worker code under var/releases/) or list them."

    def add_arguments(self, parser):
        # Positional choices: Django 1.11's command parser does not support argparse subparsers.
        parser.add_argument("action", choices=["create", "list"])
        parser.add_argument("name", nargs="?", help="with create: the new release's name")
        parser.add_argument("--from", dest="source", help="with create: checkout to copy (default: this one)")

    def handle(self, *args, **options):
        try:
            if options["action"] == "create":
                if not options["name"]:
                    raise releases.ReleaseError("name the release: manage.py release create NAME")
                target = releases.create(options["name"], options["source"])
                self.stdout.write("Created release %s in %s; roll it out with `manage.py rollout %s`"
                                  % (options["name"], target, options["name"]))
                return
            current, _ = releases.current()
            for name in releases.available() or ["(none yet)"]:
                self.stdout.write("%s %s" % ("*" if name == current else " ", name))
            if current not in releases.available():
                self.stdout.write("* %s (the checkout)" % current)
        except releases.ReleaseError as exc:
            raise SystemExit("error: %s" % exc)
