# Set-up and entry points. `make run` and `make test` do everything on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Public knobs (make run PORT=8001 LAYER=redis REDIS_URL=redis://... AMQP_URL=amqp://... TOPOLOGY=asgi): the
# settings read CHAT_*.
ifdef PORT
export CHAT_PORT := $(PORT)
endif
ifdef LAYER
export CHAT_LAYER := $(LAYER)
endif
ifdef REDIS_URL
export CHAT_REDIS_URL := $(REDIS_URL)
endif
ifdef AMQP_URL
export CHAT_AMQP_URL := $(AMQP_URL)
endif
ifdef TOPOLOGY
export CHAT_TOPOLOGY := $(TOPOLOGY)
endif
export PYTHONDONTWRITEBYTECODE := 1
MANAGE := $(PY) manage.py
# Before a recipe's manage.py commands: CHAT_SECRET_KEY from the environment, else var/secret_key's.
WITH_SECRET = export CHAT_SECRET_KEY="$${CHAT_SECRET_KEY:-$$(cat var/secret_key)}";

.PHONY: help venv interface os-deps run cluster paas stop ctl status rollout lint test bench freeze clean

help:
	@echo "make run    - set up, then run the whole deployment on http://127.0.0.1:$${CHAT_PORT:-8000} (PORT=, LAYER=ipc|redis|rabbitmq, REDIS_URL=, AMQP_URL=, TOPOLOGY=split|asgi|inverse)"
	@echo "make test   - set up, then run the whole test suite"
	@echo "make cluster - as root: the deployment over 10 hosts in network namespaces (LAYOUT=sharded|sentinel, PORT=)"
	@echo "make paas   - set up, then run the site from the Procfile with honcho, as a platform would (PORT=5000)"
	@echo "make status - every program's state and each channel's depth"
	@echo "make stop   - stop a deployment started from this checkout"
	@echo "make ctl ARGS='restart realtime:*' - supervisorctl for that deployment"
	@echo "make rollout RELEASE=name - copy this checkout's code as a release and roll the workers onto it"
	@echo "make lint   - flake8 and isort (make test runs it first)"
	@echo "make bench  - benchmarks (results in BENCHMARKS.md)"

# bin/find-python picks a CPython 3.6-3.9 (Django 1.11 does not import on 3.10+); PYTHON= overrides.
$(STAMP): requirements.txt bin/setup-venv
	@bin/setup-venv $(VENV)
	@touch $@

venv: $(STAMP)

os-deps:
	@bin/os-deps $(OS_PACKAGES)

var/secret_key:
	@mkdir -p var && umask 077 && $(PY) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@

# The interface server's virtualenv: a current CPython (CHAT_INTERFACE_PYTHON chooses), or none and
# daphne runs on the workers' Python; bin/setup-interface says which, and does nothing when up to date.
IVENV := venv-interface
interface:
	@bin/setup-interface $(IVENV)

# The deployment's own RabbitMQ: with LAYER=rabbitmq, unless AMQP_URL names a broker.
OWN_RABBITMQ := $(if $(filter rabbitmq,$(CHAT_LAYER)),$(if $(CHAT_AMQP_URL),,rabbitmq))
run: OS_PACKAGES := nginx redis $(OWN_RABBITMQ)
run: $(STAMP) os-deps interface var/secret_key
	@$(WITH_SECRET) $(MANAGE) migrate -v0 --noinput && $(MANAGE) collectstatic -v0 --noinput && exec $(MANAGE) serve

stop: $(STAMP) var/secret_key
	@$(WITH_SECRET) $(MANAGE) ctl shutdown

ctl: $(STAMP) var/secret_key
	@$(WITH_SECRET) $(MANAGE) ctl $(ARGS)

rollout: $(STAMP) var/secret_key
	@test -n "$(RELEASE)" || { echo "error: name the release: make rollout RELEASE=name [ROLLOUT_ARGS=--dry-run]"; exit 2; }
	@$(WITH_SECRET) $(MANAGE) release list | grep -qw "$(RELEASE)" || $(MANAGE) release create "$(RELEASE)"; \
	$(MANAGE) rollout "$(RELEASE)" $(ROLLOUT_ARGS)

# Ten hosts, each a network namespace of this machine (root only): docs/scaling.md.
cluster: OS_PACKAGES := nginx redis postgresql
cluster: $(STAMP) os-deps interface var/secret_key
	@$(WITH_SECRET) exec $(MANAGE) cluster --layout $(or $(LAYOUT),sharded)

# The Procfile under honcho, as a platform runs it (bin/paas): PORT=5000, the redis layer.
paas: OS_PACKAGES := redis
paas: $(STAMP) os-deps interface var/secret_key
	@$(WITH_SECRET) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" exec bin/paas

status: $(STAMP) var/secret_key
	@$(WITH_SECRET) $(MANAGE) status

lint: $(STAMP)
	$(PY) -m flake8
	$(PY) -m isort --check-only --diff --quiet .

# The WebSocket protocol fuzzer (Autobahn|Testsuite) runs on Python 2.7, in a virtualenv of its own.
AUTOBAHN := tests/autobahn/venv
$(AUTOBAHN)/.installed: tests/autobahn/requirements.txt tests/autobahn/maker.txt bin/setup-autobahn
	@bin/setup-autobahn $(AUTOBAHN)
	@touch $@

test: OS_PACKAGES := nginx redis rabbitmq postgresql chromium chromedriver
test: $(STAMP) os-deps interface lint $(AUTOBAHN)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

BENCH_VENV := bench/venv
$(BENCH_VENV)/.installed: bench/requirements.txt
	@test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	@$(BENCH_VENV)/bin/python -m pip install -q --no-deps -r bench/requirements.txt 2>&1 | grep -v '^WARNING: Location' || true
	@$(BENCH_VENV)/bin/python -c 'import aiohttp, matplotlib' && touch $@

# The peer (Channels 4 + daphne 4 + channels_redis) needs Python >= 3.10: without one the bench
# says so and runs without the peer.
PEER_VENV := bench/peer-venv
$(PEER_VENV)/.installed: bench/peer/requirements.txt
	@if python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then \
	  (test -x $(PEER_VENV)/bin/python || python3 -m venv $(PEER_VENV)) && \
	  ($(PEER_VENV)/bin/python -m pip install -q --no-deps -r bench/peer/requirements.txt 2>&1 | grep -v '^WARNING: Location' || true) && \
	  $(PEER_VENV)/bin/python -c 'import channels, channels_redis, daphne' && touch $@; \
	else echo "python3 is older than 3.10: the bench runs without the Channels 4 peer"; fi

# BENCH_ARGS=--quick for a short smoke run, --only redis/tuned for one configuration.
bench: OS_PACKAGES := nginx redis rabbitmq wrk
bench: $(STAMP) os-deps interface $(BENCH_VENV)/.installed $(PEER_VENV)/.installed
	$(PY) -m bench.run $(BENCH_ARGS)
	@echo "Results in bench/results/; tables and plots: $(BENCH_VENV)/bin/python bench/report.py bench/results/<file>.json"

freeze: $(STAMP)
	@$(PY) -m pip freeze --exclude-editable | grep -v '^pkg.resources' > requirements.lock && \
	echo "Wrote requirements.lock: compare with requirements.txt and copy the pins you mean"

clean:
	rm -rf $(VENV) $(IVENV) var .pytest_cache
