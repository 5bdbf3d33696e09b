"""The harness serves the benchmarks too, which run without Django settings."""
import os
import subprocess
import sys

from django.conf import settings


def test_the_harness_imports_without_django_settings():
    """`python -m bench.run` imports harness/ before any settings exist (a module that reads
    settings at import would stop the bench)."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE" and not k.startswith("CHAT_")}
    imports = "import harness.client, harness.servers, harness.sites, harness.stats"
    result = subprocess.run([sys.executable, "-c", imports],
                            cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    assert result.returncode == 0, result.stdout
