"""Start-up objects leave the collector's full passes."""
import gc

import pytest

from my_project.gcfreeze import freeze_startup


@pytest.mark.skipif(not hasattr(gc, "freeze"), reason="gc.freeze is Python 3.7+")
def test_startup_objects_are_frozen():
    """Everything alive at start-up (Django, the apps) moves to the permanent generation, so a full
    collection no longer walks it."""
    gc.unfreeze()
    try:
        freeze_startup()
        assert gc.get_freeze_count() > 10000  # Django and the apps are loaded in the test process
    finally:
        gc.unfreeze()
