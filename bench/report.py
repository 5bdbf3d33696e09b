"""Turn a bench/results/<date>.json into PNG plots in bench/ and the tables of BENCHMARKS.md.

Runs in bench/venv (matplotlib). Usage: bench/venv/bin/python bench/report.py bench/results/X.json
[Y.json ...]: with several files, a later file's row replaces an earlier one of the same configuration
and scenario (a partial run on top of a full one).
"""
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def save(fig, filename):
    """Lay the figure out, write it to bench/<filename>, let it go."""
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, filename), dpi=90)
    plt.close(fig)


def rows(data, scenario_prefix):
    return [r for r in data["results"] if r["scenario"].startswith(scenario_prefix)]


def latency_plot(data, scenario, filename, title):
    chosen = [r for r in rows(data, scenario) if r.get("samples")]
    if not chosen:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in chosen:
        samples = sorted(s for s in r["samples"] if s is not None)
        ax.plot(samples, [i / len(samples) for i in range(len(samples))], label=r["config"])
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save(fig, filename)
    return filename


def scaling_plot(data, filename):
    if not [r for r in data["results"] if r["scenario"].startswith(("chat, 100 clients", "cpu-heavy"))]:
        return None  # a run without these scenarios (e.g. sockets alone) leaves the plot as it is
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for layer in ("redis", "ipc"):
        for scenario, style in (("chat, 100 clients", "-o"), ("cpu-heavy", "--s")):
            points = []
            for r in data["results"]:
                if r["scenario"].startswith(scenario) and r["config"].startswith(layer + "/tuned/"):
                    points.append((int(r["config"].split("/")[2][:-1]), r.get("messages_per_second", 0)))
            if points:
                points.sort()
                ax.plot([p[0] for p in points], [p[1] for p in points], style,
                        label="%s: %s" % (layer, scenario))
    ax.set_xlabel("realtime workers")
    ax.set_ylabel("messages / s")
    ax.set_xticks([1, 2, 4])
    ax.set_title("Throughput against realtime workers (tuned)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, filename)
    return filename


LAYER_FIGURES = (("raw echo, 1 client", "p50", "echo p50 (ms)"),
                 ("chat round trip, 1 client", "p50", "chat round trip p50 (ms)"),
                 ("chat, 100 clients/100 rooms", "messages_per_second", "100 clients (msg/s)"),
                 ("fan-out to 1000", "p50", "fan-out to 1000 p50 (ms)"))


def layer_medians(data):
    """{layer: {figure label: median over the side-by-side rounds}} of the "layers" runs."""
    found = {}
    for r in data["results"]:
        parts = r["config"].split("/")
        if len(parts) < 4 or not parts[3].startswith("layers") or "failed" in r:
            continue
        for scenario, key, label in LAYER_FIGURES:
            if r["scenario"] == scenario:
                value = r.get(key) if key in r else r.get("summary", {}).get(key)
                if value is not None:
                    found.setdefault(parts[0], {}).setdefault(label, []).append(value)
    return {layer: {label: statistics.median(values) for label, values in figures.items()}
            for layer, figures in found.items()}


def layers_plot(data, filename):
    medians = layer_medians(data)
    if not medians:
        return None
    layers = [layer for layer in ("redis", "ipc", "rabbitmq") if layer in medians]
    fig, axes = plt.subplots(1, len(LAYER_FIGURES), figsize=(12, 3.5))
    for ax, (_, _, label) in zip(axes, LAYER_FIGURES):
        ax.bar(layers, [medians[layer].get(label, 0) for layer in layers], color=["C0", "C1", "C2"][:len(layers)])
        ax.set_title(label, fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("The three layers side by side (medians of the rounds of one run)")
    save(fig, filename)
    return filename


# Issue 16's ratios to the peer: (figure, our scenario, the peer's scenario, key, target ratio, the
# better side: "lower" for latencies, "higher" for throughput).
VERSUS = (("raw echo p50", "raw echo, 1 client", "raw echo, 1 client", "p50", 1.5, "lower"),
          ("raw echo p50, no nginx", "raw echo, 1 client, no nginx", "raw echo, 1 client", "p50", 1.5, "lower"),
          ("chat round trip p50", "chat round trip, 1 client", "chat round trip, 1 client", "p50", 0.8, "lower"),
          ("100 clients, msg/s", "chat, 100 clients/100 rooms", "chat, 100 clients/100 rooms",
           "messages_per_second", 1.25, "higher"))


def _figure(row, key):
    return row.get(key) if key in row else row.get("summary", {}).get(key)


def versus_rounds(data):
    """{round label: {figure: (ours, the peer's, ratio)}} of the "versus" runs (ours / the peer's)."""
    by = {}
    for r in data["results"]:
        label = r["config"].rsplit("/", 1)[-1]
        if not label.startswith("versus") or "failed" in r:
            continue
        side = "peer" if r["config"].startswith("peer") else "ours"
        by.setdefault(label, {}).setdefault(side, {})[r["scenario"]] = r
    rounds = {}
    for label, sides in sorted(by.items()):
        for figure, ours, theirs, key, _, _ in VERSUS:
            a = sides.get("ours", {}).get(ours)
            b = sides.get("peer", {}).get(theirs)
            if a and b and _figure(a, key) and _figure(b, key):
                rounds.setdefault(label, {})[figure] = (_figure(a, key), _figure(b, key),
                                                        _figure(a, key) / _figure(b, key))
    return rounds


def versus_table(data):
    """Markdown: each round's figures and ratio, then the median ratio against the target."""
    rounds = versus_rounds(data)
    if not rounds:
        return ""
    lines = ["| figure | " + " | ".join("%s: ours / peer = ratio" % label for label in rounds) +
             " | median ratio | target |", "| --- |" + " ---: |" * (len(rounds) + 2)]
    for figure, _, _, _, target, better in VERSUS:
        cells = ["%.2f / %.2f = %.2fx" % rounds[label][figure] if figure in rounds[label] else "" for label in rounds]
        ratios = [rounds[label][figure][2] for label in rounds if figure in rounds[label]]
        median = statistics.median(ratios) if ratios else None
        met = median is not None and (median <= target if better == "lower" else median >= target)
        lines.append("| %s | %s | %s | %s %.2fx %s |" % (
            figure, " | ".join(cells), "%.2fx" % median if median else "",
            "≤" if better == "lower" else "≥", target, "met" if met else "not met"))
    return "\n".join(lines)


def versus_plot(data, filename):
    rounds = versus_rounds(data)
    if not rounds:
        return None
    fig, axes = plt.subplots(1, len(VERSUS), figsize=(13, 3.5))
    for ax, (figure, _, _, _, target, _) in zip(axes, VERSUS):
        ratios = [rounds[label][figure][2] for label in rounds if figure in rounds[label]]
        ax.bar(range(len(ratios)), ratios, color="C0")
        ax.axhline(target, color="C3", linestyle="--", label="target %.2fx" % target)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_title(figure, fontsize=9)
        ax.set_xlabel("round")
        ax.legend(fontsize=7)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("Ours (Redis, 2 realtime workers) / the Channels 4 peer, rounds alternating in one run")
    save(fig, filename)
    return filename


def table(data):
    lines = ["| configuration | scenario | p50 ms | p99 ms | rate | errors / missed |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in data["results"]:
        if "rss_mb" in r or "ratio" in r or "probe_ms" in r or r["scenario"].startswith(("soak", "sockets")):
            continue
        s = r.get("summary", {})
        if "failed" in r:
            lines.append("| %s | %s | - | - | failed: %s | - |" % (
                r["config"], r["scenario"], r["failed"].strip().splitlines()[-1][:80].replace("|", "/")))
            continue
        rate = r.get("messages_per_second") or r.get("requests_per_second") or r.get("achieved_rps")
        unit = " msg/s" if "messages_per_second" in r else " req/s"
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            r["config"], r["scenario"],
            "%.2f" % s["p50"] if s.get("p50") is not None else "-",
            "%.2f" % s["p99"] if s.get("p99") is not None else "-",
            ("%.0f%s" % (rate, unit)) if rate else "-",
            r.get("errors", r.get("missed", 0))))
    lines += page_ratios(data)
    probes = [r for r in data["results"] if "probe_ms" in r]
    if probes:
        lines += ["", "| configuration | machine speed probe, ms (lower is faster) |", "| --- | ---: |"]
        lines += ["| %s | %.1f |" % (r["config"], r["probe_ms"]) for r in probes]
    memory = [r for r in data["results"] if "rss_mb" in r]
    if memory:
        lines += ["", "| configuration | process | RSS MiB idle | RSS MiB, 1000 sockets open |",
                  "| --- | --- | ---: | ---: |"]
        lines += ["| %s | %s | %.1f | %s |" % (
            r["config"], r["scenario"][4:], r["rss_mb"],
            "%.1f (%d open)" % (r["rss_1000_mb"], r["sockets"]) if r.get("rss_1000_mb") else "-")
            for r in memory]
    cpu = [r for r in data["results"] if r.get("cpu_ms_per_message")]
    if cpu:
        kinds = ["daphne", "realtime", "background", "redis", "nginx"]
        lines += ["", "| configuration | msg/s | CPU ms per message: %s | total |" % " / ".join(kinds),
                  "| --- | ---: | --- | ---: |"]
        for r in cpu:
            spent = r["cpu_ms_per_message"]
            lines.append("| %s | %.0f | %s | %.2f |" % (
                r["config"], r["messages_per_second"],
                " / ".join("%.2f" % spent.get(kind, 0) for kind in kinds), sum(spent.values())))
    soaks = rows(data, "soak")
    if soaks:
        lines += ["", "| configuration | soak | msg/s | p50 / p99 ms | errors | RSS slope, MiB per 10 min |",
                  "| --- | --- | ---: | ---: | ---: | --- |"]
        for r in soaks:
            lines.append("| %s | %s | %.0f | %.1f / %.1f | %d | %s |" % (
                r["config"], r["scenario"], r["messages_per_second"], r["summary"]["p50"],
                r["summary"]["p99"], r["errors"], ", ".join(
                    "%s %+.1f" % (name, 10 * slope) for name, slope in sorted(r["slope_mb_per_min"].items()))))
    lines += sockets_table(data)
    return "\n".join(lines)


def sockets_rows(data):
    """{config: {"open": row, "rss": row, "broadcast": row, "storm": row}} of the sockets scenario."""
    found = {}
    for r in rows(data, "sockets"):
        kind = r["scenario"].split(": ", 1)[1].split()[0]  # open, RSS, broadcast, reconnect
        found.setdefault(r["config"], {})[kind] = r
    return found


def sockets_table(data):
    """Issue 16's targets 3 and 4, one row per configuration (the deployment and the peer)."""
    found = sockets_rows(data)
    if not found:
        return []
    lines = ["", "| configuration | accepted / opened | refused | seconds to open all | broadcast to all, "
             "last member p50 (5) ms | missed | RSS per idle socket KiB | reconnect storm |",
             "| --- | ---: | --- | ---: | ---: | ---: | --- | --- |"]
    for config, kinds in found.items():
        opened, rss, cast, storm = (kinds.get(k, {}) for k in ("open", "RSS", "broadcast", "reconnect"))
        delivered = [v for v in cast.get("samples", []) if v is not None]
        storm_text = "-"
        if storm:
            everyone = storm["open_after"] >= storm["open_before"]
            storm_text = ("victim held %d; %d of %d back %s %s s; client closes %d; other daphne's sockets %s "
                          "at lowest (of %s); broadcast after: %s ms, missed %d" % (
                              storm["victim_sockets"], storm["open_after"], storm["open_before"],
                              "in" if everyone else "when the 180 s watch ended, the last at",
                              "%.1f" % storm["seconds_to_all_back"] if storm["seconds_to_all_back"] else "-",
                              storm["client_closes"], storm["survivor_sockets_lowest"],
                              storm["survivor_sockets_before"],
                              "%.0f" % storm["broadcast_after_ms"] if storm.get("broadcast_after_ms") else "-",
                              storm["missed_after"]))
        lines.append("| %s | %s / %s | %s | %s | %s | %s | %s | %s |" % (
            config, opened.get("accepted", "-"), opened.get("members", "-"),
            ", ".join("%s: %d" % item for item in sorted(opened.get("failures", {}).items())) or "none",
            "%.1f" % opened["seconds"] if "seconds" in opened else "-",
            "%.0f (%s)" % (statistics.median(delivered), " ".join("%.0f" % v for v in delivered))
            if delivered else "-",
            cast.get("missed", "-"),
            "%.1f (%s)" % (rss["kib_per_socket"], ", ".join(
                "%s %.1f" % item for item in sorted(rss["kib_by_group"].items()))) if rss else "-",
            storm_text))
    return lines


def sockets_plot(data, filename):
    """The sockets scenario: the 5 broadcasts' time to the last member, and RSS per idle socket by
    process kind, for the deployment and the peer."""
    found = sockets_rows(data)
    if not found:
        return None
    storms = {config: kinds["reconnect"]["timeline"] for config, kinds in found.items()
              if kinds.get("reconnect", {}).get("timeline")}
    fig, axes = plt.subplots(1, 3 if storms else 2, figsize=(15 if storms else 10, 4.5))
    left, right = axes[0], axes[1]
    if storms:
        for config, timeline in sorted(storms.items()):
            axes[2].plot([t for t, _ in timeline], [n for _, n in timeline], label=config)
        axes[2].axvline(30, color="red", linestyle="--", label="target 30 s")
        axes[2].set_title("Reconnect storm: sockets open after a daphne's SIGKILL", fontsize=10)
        axes[2].set_xlabel("seconds after the kill")
        axes[2].grid(True, alpha=0.3)
        axes[2].legend(fontsize=8)
    configs = sorted(found)
    colors, labelled = {}, set()
    for x, config in enumerate(configs):
        cast = found[config].get("broadcast", {})
        delivered = [v / 1000.0 for v in cast.get("samples", []) if v is not None]
        left.plot([x] * len(delivered), delivered, "o", alpha=0.7)
        if delivered:
            left.plot([x - 0.2, x + 0.2], [statistics.median(delivered)] * 2, "k-")
        bottom = 0.0
        for group, kib in sorted(found[config].get("RSS", {}).get("kib_by_group", {}).items()):
            right.bar(x, kib, bottom=bottom, color=colors.setdefault(group, "C%d" % len(colors)),
                      label=group if group not in labelled else None)
            labelled.add(group)
            bottom += kib
    left.axhline(1.5, color="red", linestyle="--", label="target 1.5 s")
    left.set_title("Broadcast to every open socket (%s): last member" % "/".join(
        "{:,}".format(found[c].get("open", {}).get("accepted", 0)) for c in configs), fontsize=10)
    left.set_ylabel("seconds")
    right.axhline(25, color="red", linestyle="--", label="target 25 KiB")
    right.set_title("RSS per idle socket (nginx + daphne)")
    right.set_ylabel("KiB")
    for ax in (left, right):
        ax.set_xticks(range(len(configs)))
        ax.set_xticklabels([c.split("/")[0] if c.startswith("peer") else c for c in configs], fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, filename)
    return filename


def page_ratios(data):
    """daphne + workers' p50 over gunicorn's for the same page at 300 rps, per configuration."""
    found = {(r["config"], r["scenario"]): r for r in data["results"]
             if r["scenario"].endswith("at 300 rps") and r.get("summary", {}).get("p50")}

    ratios = {(r["config"], r["scenario"].split(" at 300 rps")[0]): r for r in data["results"] if "ratio" in r}

    def cpu(row):  # CPU per request of the whole deployment, where the run measured it
        spent = row.get("cpu_ms_per_request")
        return "%.2f" % sum(spent.values()) if spent else "-"
    lines = []
    for (config, scenario), row in sorted(found.items()):
        if " via gunicorn " in scenario:
            daphne = found.get((config, scenario.replace(" via gunicorn ", " via daphne+workers ")))
            if daphne:
                page = scenario.split(" via ")[0]
                # Runs that alternated the two paths in rounds quote the median of the rounds' ratios.
                rounds = ratios.get((config, page))
                lines.append("| %s | %s | %.2f | %.2f | %.2fx | %s | %s / %s |" % (
                    config, page, row["summary"]["p50"], daphne["summary"]["p50"],
                    daphne["summary"]["p50"] / row["summary"]["p50"],
                    "%.2fx (%s)" % (rounds["ratio"], " ".join("%.2f" % r for r in rounds["round_ratios"]))
                    if rounds else "-", cpu(row), cpu(daphne)))
    if not lines:
        return []
    return ["", "| configuration | page at 300 rps | gunicorn p50 ms | daphne+workers p50 ms | ratio "
                "| median ratio of rounds | CPU ms per request, gunicorn / daphne path |",
            "| --- | --- | ---: | ---: | ---: | --- | ---: |"] + lines


def soak_plot(data, filename):
    soaks = [r for r in rows(data, "soak") if r.get("series")]
    if not soaks:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in soaks:
        names = sorted(r["series"][0][1])
        for name in names:
            ax.plot([t / 60.0 for t, _ in r["series"]], [v[name] for _, v in r["series"]],
                    label="%s %s" % (r["config"].split("/")[0], name))
    ax.set_xlabel("minutes of steady chat")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title("Memory through the soak")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, filename)
    return filename


def merged(paths):
    """The results of several runs: the newest run's rows first, then the rows only older runs have."""
    rows = {}
    for path in reversed(paths):
        for r in json.load(open(path))["results"]:
            rows.setdefault((r["config"], r["scenario"]), r)
    return {"results": list(rows.values())}


def main():
    data = merged(sys.argv[1:])
    plots = [latency_plot(data, "raw echo", "echo-latency.png", "Raw layer echo (1 client), CDF"),
             latency_plot(data, "chat round trip", "chat-latency.png", "Chat round trip (1 client), CDF"),
             scaling_plot(data, "throughput-workers.png"),
             soak_plot(data, "memory-soak.png"),
             layers_plot(data, "layers.png"),
             sockets_plot(data, "sockets.png"),
             versus_plot(data, "versus.png")]
    print(table(data))
    print()
    print(versus_table(data))
    print()
    for layer, figures in sorted(layer_medians(data).items()):
        print("%s: %s" % (layer, ", ".join("%s %.2f" % item for item in figures.items())))
    for plot in plots:
        if plot:
            print("![%s](bench/%s)" % (plot, plot))


if __name__ == "__main__":
    main()
