"""A cluster of hosts on this machine, each a Linux network namespace (`make cluster`)."""
