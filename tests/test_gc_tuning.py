from __future__ import annotations

import gc

from centralino.gc_tuning import YOUNG_THRESHOLD, startup_objects_frozen


def test_startup_objects_are_frozen_and_settings_restored_on_exit() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    built = [object() for _ in range(100)]  # "the process as built"
    with startup_objects_frozen():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() >= frozen_before + len(built)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0  # unfrozen: collectable again once the demo/test ends
