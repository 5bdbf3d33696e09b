"""Percentiles and summaries of latencies, as the tests and the benchmarks report them."""
import statistics


def percentile(values, fraction):
    """The value below which `fraction` of the values lie (nearest rank); 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(values):
    """n, p50, p90, p99, mean and max of the values that are not None."""
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": percentile(values, 0.50), "p90": percentile(values, 0.90),
            "p99": percentile(values, 0.99), "mean": statistics.mean(values), "max": max(values)}
