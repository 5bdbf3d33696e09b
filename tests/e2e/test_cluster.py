"""The deployment across hosts (`make cluster`: ten network namespaces of this machine): a room whose
members sit on both interface hosts, a channel kept on one shard, nothing listening beyond the cluster's
addresses, and faults across hosts under contract-following chat load: after each, every acked
message reaches every member exactly once and in order (after catch-up), nothing is stored twice.
"""
import json
import os
import re
import signal
import subprocess
import time
import uuid

import pytest

from harness.servers import wait_for
from harness.sites import ClusterSite
from ops.cluster import netns

from .deployed import deployed
from .load import under_load

pytestmark = [pytest.mark.cluster, pytest.mark.faults]

INTERFACE_HOSTS = ("interface-1", "interface-2")


@pytest.fixture(scope="module", params=["sharded", "sentinel"])
def cluster(request):
    if os.geteuid() != 0:
        pytest.skip("the cluster's network namespaces need root")
    site = ClusterSite(request.param)
    with deployed(request, site, "cluster-%s" % request.param) as deployment:
        yield deployment
    # Ctrl-C (SIGTERM here) stops every host and removes every namespace by itself.
    assert site.left_behind == {"processes": [], "namespaces": [], "portal listening": False}


def new_room(site):
    slug = "cluster-%s" % uuid.uuid4().hex[:8]
    site.shell("from chat.models import Room; Room.objects.create(slug=%r, name=%r)" % (slug, slug))
    return slug


def fault(site, event, name, chatters=8):
    """`event` under load in a new room (load.under_load), labelled with the layout."""
    room = new_room(site)
    result = under_load(site, room, event, "%s [%s]" % (name, site.cluster_layout), chatters=chatters, pollers=1)
    result["room"] = room
    return result


def upstreams_used(site, room):
    """The interface hosts' addresses the balancer's nginx sent the room's sockets to (its access
    log names each request's upstream)."""
    with open(os.path.join(site.host_paths("balancer").log, "nginx-access.log")) as log:
        return {match.group(1) for line in log if "/ws/rooms/%s/" % room in line
                for match in [re.search(r"upstream=([0-9.]+):", line)] if match}


# ---- the cluster serves ----------------------------------------------------------------------

def test_a_room_spans_both_interface_hosts(cluster):
    """Members whose sockets sit on different interface hosts all get every message: group delivery
    through the shared layer reaches every daphne."""
    result = fault(cluster, lambda site: time.sleep(3), "room across hosts")
    assert result["reconnects"] == 0
    from ops.cluster import plan
    addresses = {plan.address(cluster.host(name)) for name in INTERFACE_HOSTS}
    wait_for(lambda: addresses <= upstreams_used(cluster, result["room"]), 10,
             "sockets on both interface hosts in the balancer's log")


def test_a_channel_stays_on_one_shard(cluster):
    """Sharded: every message of one channel lands in one list on one Redis host (the consistent
    hash), comes back in order, and different channels spread over all three hosts."""
    if cluster.cluster_layout != "sharded":
        pytest.skip("one master holds everything in the Sentinel layout")
    out = cluster.shell(
        "import json; from channels import DEFAULT_CHANNEL_LAYER, channel_layers\n"
        "layer = channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer\n"
        "for n in range(20):\n"
        "    layer.send('cluster.one', {'n': n})\n"
        "lengths = []\n"
        "for connection in layer._connection_list:\n"
        "    lengths.append(connection.llen(layer.prefix + 'cluster.one'))\n"
        "order, homes = [], set()\n"
        "for n in range(20):\n"
        "    order.append(layer.receive(['cluster.one'])[1]['n'])\n"
        "for n in range(30):\n"
        "    homes.add(layer.consistent_hash('cluster.c%d' % n))\n"
        "print(json.dumps([lengths, order, sorted(homes), len(layer.hosts)]))")
    lengths, order, homes, shards = json.loads(out.splitlines()[-1])
    assert shards == 3
    assert sorted(lengths) == [0, 0, 20]
    assert order == list(range(20))
    assert homes == [0, 1, 2]


def test_nothing_listens_beyond_the_cluster(cluster):
    """Every listening socket of every host is on its own cluster address or its loopback, no host
    has a route beyond the cluster's LAN, and the layer's servers ask for a password."""
    from ops.cluster import plan
    for host in plan.HOSTS:
        listening = subprocess.run(cluster.namespaces().exec_prefix(host.name) + ["ss", "-Hltn"],
                                   stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
        local = {line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines() if line.strip()}
        assert local <= {plan.address(host), "127.0.0.1", "[::1]"}, (host.name, local)
        routes = netns.ip("-n", cluster.namespaces().name(host.name), "route", "show")
        assert "default" not in routes and routes.split() == [
            "10.77.0.0/24", "dev", "eth0", "proto", "kernel", "scope", "link", "src", plan.address(host)], routes
    denied = subprocess.run(
        cluster.namespaces().exec_prefix("worker-1") + ["redis-cli", "-h", plan.address(cluster.host("redis-1")),
                                                        "ping"], stdout=subprocess.PIPE, universal_newlines=True)
    assert "NOAUTH" in denied.stdout


# ---- faults across hosts ---------------------------------------------------------------------

def cut_off(site, host, seconds=10):
    """A host off the network (its link down: packets vanish, nobody is told), then back."""
    site.namespaces().cut(host)
    try:
        time.sleep(seconds)
    finally:
        site.namespaces().mend(host)


def cut_worker_host(site):
    """worker-2 off the network for 10 s, then back."""
    cut_off(site, "worker-2")


def cut_interface_host(site):
    """interface-1 off the network for 10 s: its sockets go silent, clients give them up and
    reconnect through the balancer to interface-2."""
    cut_off(site, "interface-1")


def kill_interface_daphnes(site):
    """SIGKILL both daphnes of interface-2 (supervisord starts them again)."""
    rpc = site.host_supervisor("interface-2")
    for info in rpc.getAllProcessInfo():
        if info["group"] == "daphne" and info["pid"]:
            os.kill(info["pid"], signal.SIGKILL)
    time.sleep(1)
    wait_for(lambda: all(i["statename"] == "RUNNING" for i in rpc.getAllProcessInfo() if i["group"] == "daphne"),
             30, "interface-2's daphnes back")


def restart_postgres(site):
    """Restart the database host's PostgreSQL."""
    rpc = site.host_supervisor("database")
    rpc.stopProcess("postgres")
    rpc.startProcess("postgres")


def rollout_both_worker_hosts(site):
    """A new release rolled onto both worker hosts by one rollout driving both supervisords over
    XML-RPC: the canaries on worker-1, then every worker of both hosts runs it."""
    name = "r%s" % uuid.uuid4().hex[:6]
    created = site.manage("release", "create", name)
    assert created.returncode == 0, created.stderr
    result = site.manage("rollout", name, "--window", "3", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    from ops.cluster import plan
    first, second = (plan.address(host) for host in plan.of_role("worker"))
    assert "canary %s workers-realtime_00" % first in result.stdout, result.stdout
    assert "%s workers-realtime_01 restarted" % second in result.stdout, result.stdout
    running = site.shell("from ops.models import WorkerStats; "
                         "print(sorted(set(WorkerStats.objects.live().values_list('host', 'release'))))")
    assert running == str(sorted({(first, name), (second, name)})), running


def kill_redis_master(site):
    """SIGKILL the Redis master (it stays down: Sentinel promotes a replica), then bring the host
    back, as a replica of the new master."""
    master = redis_master(site)
    rpc = site.host_supervisor(master)
    os.kill(rpc.getProcessInfo("redis")["pid"], signal.SIGKILL)
    wait_for(lambda: redis_master(site) not in (master, None), 30, "Sentinel to promote a replica")
    site.killed_master = master


def redis_cli(site, name, *args, port=6379):
    """redis-cli against a Redis host's server (or its Sentinel: port 26379) from inside its
    namespace, with the cluster's password; CompletedProcess."""
    from ops.cluster import plan
    return subprocess.run(
        site.namespaces().exec_prefix(name) + [
            "redis-cli", "--no-auth-warning", "-a", site.plan().secrets["redis"],
            "-h", plan.address(site.host(name)), "-p", str(port)] + list(args),
        stdout=subprocess.PIPE, universal_newlines=True)


def redis_master(site):
    """The Redis host Sentinel names as master (None when it cannot say)."""
    from ops.cluster import plan
    for host in plan.of_role("redis"):
        answer = redis_cli(site, host.name, "sentinel", "get-master-addr-by-name", plan.SERVICE, port=26379)
        lines = answer.stdout.split()
        if answer.returncode == 0 and lines:
            return next((h.name for h in plan.of_role("redis") if plan.address(h) == lines[0]), None)
    return None


EVENTS = {
    "sharded": [cut_worker_host, cut_interface_host, kill_interface_daphnes, restart_postgres,
                rollout_both_worker_hosts],
    "sentinel": [kill_redis_master],
}
# Nothing between a client and its daphne changes.
NO_DROPS = {cut_worker_host, restart_postgres, rollout_both_worker_hosts}
EVENT_NAMES = sorted({event.__name__ for events in EVENTS.values() for event in events})


@pytest.mark.parametrize("event_name", EVENT_NAMES)
def test_fault_across_hosts(cluster, event_name):
    """Chat goes on through the event; afterwards every acked message is stored once and every
    member sees each once, in order; a worker host's partition or a database restart drops no
    socket; a Sentinel failover recovers within 10 s."""
    event = next((e for e in EVENTS[cluster.cluster_layout] if e.__name__ == event_name), None)
    if event is None:
        pytest.skip("%s is a fault of the other layout" % event_name)
    result = fault(cluster, event, event_name)
    if event in NO_DROPS:
        assert result["reconnects"] == 0, "%s dropped %d sockets" % (event_name, result["reconnects"])
    if event is kill_redis_master:
        assert result["recovery_s"] <= 10, result
        back = cluster.host_supervisor(cluster.killed_master)
        back.startProcess("redis")
        wait_for(lambda: "role:slave" in redis_info(cluster, cluster.killed_master), 30,
                 "the old master to rejoin as a replica")
        assert redis_master(cluster) != cluster.killed_master


def redis_info(site, name):
    """INFO replication of a Redis host's server ("" when it does not answer)."""
    return redis_cli(site, name, "info", "replication").stdout
