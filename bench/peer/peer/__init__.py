"""The peer of the benchmark: the same chat echo on Channels 4 + daphne 4 + channels_redis."""
