"""What the tests and the benchmarks share: real servers and deployments, a client, statistics."""
