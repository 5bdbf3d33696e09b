"""A deployment for the length of a fixture: started, its logs reported when a test of it failed, closed."""
import contextlib


@contextlib.contextmanager
def deployed(request, deployment, layout):
    """Start `deployment` (a harness Site) for the fixture's tests; stop it whatever happens, and
    print the tail of every log first if one of those tests failed."""
    deployment.layout = layout
    failed_before = request.session.testsfailed
    try:
        yield deployment.start()
    finally:
        if request.session.testsfailed > failed_before:
            reporter = request.config.pluginmanager.getplugin("terminalreporter")
            reporter.write_line("\nLogs of the %s deployment after a failure:\n%s" % (
                layout, deployment.log_tails()))
        deployment.close()
