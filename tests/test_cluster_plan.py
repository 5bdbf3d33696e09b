"""`make cluster`'s plan and namespaces: every host's settings from one configuration, checks that
fail in one line, names that keep two clusters apart."""
import os
import stat

import pytest

from ops.cluster import netns, plan
from ops.cluster.plan import Plan
from ops.exceptions import DeploymentError


def host(name):
    return next(h for h in plan.HOSTS if h.name == name)


def test_the_cluster_has_the_hosts_of_the_issue():
    """1 balancer, 2 interface, 2 worker, 1 web, 3 Redis, 1 database host, each its own address;
    the servers start first and the balancer last."""
    roles = [h.role for h in plan.HOSTS]
    assert sorted(roles) == sorted(["balancer"] + ["interface"] * 2 + ["worker"] * 2 + ["web"] +
                                   ["redis"] * 3 + ["database"])
    assert len({plan.address(h) for h in plan.HOSTS}) == len(plan.HOSTS)
    assert {h.role for h in plan.STAGES[0]} == {"redis", "database"}
    assert [h.role for h in plan.STAGES[-1]] == ["balancer"]


def test_every_host_gets_one_configuration_plus_its_role(tmp_path):
    """The shared settings are the same on every host; role, address and var dir are the host's;
    in the Sentinel layout the layer finds its master through three Sentinels and the second and
    third Redis hosts replicate the first."""
    sentinel = Plan(str(tmp_path), "sentinel", 8123)
    envs = {h.name: sentinel.environment(h, {"REDIS_URL": "redis://elsewhere", "HOME": "/root"}) for h in plan.HOSTS}
    shared = sentinel.shared()
    for name, env in envs.items():
        assert {k: env[k] for k in shared} == shared
        assert env["CHAT_ROLE"] == host(name).role and env["CHAT_HOST_ADDRESS"] == plan.address(host(name))
        assert env["CHAT_VAR_DIR"] == os.path.join(str(tmp_path), name)
        assert "REDIS_URL" not in env and env["HOME"] == "/root"  # the caller's platform names are not the cluster's
    assert len(shared["CHAT_REDIS_SENTINELS"].split(",")) == 3 and not shared["CHAT_REDIS_URL"]
    assert envs["redis-2"]["CHAT_REDIS_REPLICA_OF"] == envs["redis-3"]["CHAT_REDIS_REPLICA_OF"] == \
        plan.address(host("redis-1")) + ":6379"
    assert not envs["redis-1"]["CHAT_REDIS_REPLICA_OF"]
    sharded = Plan(str(tmp_path), "sharded", 8123).shared()
    assert len(sharded["CHAT_REDIS_URL"].split(",")) == 3 and not sharded["CHAT_REDIS_SENTINELS"]


def test_secrets_are_made_once_and_private(tmp_path):
    """The passwords are generated at the first start, kept for later commands, readable by the
    owner only, and every URL carries them."""
    first = Plan(str(tmp_path), "sharded", 8123)
    again = Plan(str(tmp_path), "sharded", 8123)
    assert first.secrets == again.secrets and len(set(first.secrets.values())) == len(Plan.SECRETS)
    mode = os.stat(os.path.join(str(tmp_path), "secrets.json")).st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert first.secrets["redis"] in first.shared()["CHAT_REDIS_URL"]
    assert first.secrets["database"] in first.shared()["CHAT_DATABASE_URL"]


def test_two_clusters_have_their_own_namespaces(tmp_path):
    """Namespace names derive from the cluster's directory: two test runs never meet."""
    one, two = netns.Namespaces(str(tmp_path / "a")), netns.Namespaces(str(tmp_path / "b"))
    assert one.name("balancer") != two.name("balancer")
    assert one.exec_prefix("web") == ["ip", "netns", "exec", one.name("web")]


def test_the_checks_say_what_to_do(monkeypatch):
    """Not root, or no `ip`: one line each, before anything is made."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(DeploymentError, match="run it as root"):
        netns.check()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda name: None)
    with pytest.raises(DeploymentError, match="apt-get install iproute2"):
        netns.check()
