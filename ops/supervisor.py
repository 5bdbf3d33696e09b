"""Client of supervisord's XML-RPC API over the deployment's unix socket."""
import xmlrpc.client

from supervisor.xmlrpc import SupervisorTransport

# supervisor.states.ProcessStates, by name
RUNNING, BACKOFF, STOPPED, EXITED, FATAL = "RUNNING", "BACKOFF", "STOPPED", "EXITED", "FATAL"


def connect(socket_path):
    """A ServerProxy whose .supervisor namespace is supervisord's own API."""
    transport = SupervisorTransport(None, None, serverurl="unix://" + socket_path)
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def processes(proxy):
    """Every process as a dict with group, name, statename, pid, and 'full' (group:name)."""
    infos = proxy.supervisor.getAllProcessInfo()
    for info in infos:
        info["full"] = "%s:%s" % (info["group"], info["name"])
    return infos


def alive(socket_path):
    """True when a supervisord answers on that socket."""
    try:
        return connect(socket_path).supervisor.getState()["statename"] == "RUNNING"
    except Exception:  # no socket, refused, stale: nobody home
        return False
