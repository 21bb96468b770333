"""The started process's heap: frozen out of the collector, its garbage collected first."""

import gc
import weakref

from server.heap import freeze_startup_heap


class Node:
    """An object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


def test_what_is_alive_is_frozen_and_the_garbage_before_it_collected():
    garbage, alive = Node(), Node()
    garbage.other = garbage  # a cycle nothing refers to: only the collector frees it
    gone = weakref.ref(garbage)
    del garbage
    try:
        freeze_startup_heap()
        assert gone() is None, "collected before the freeze, not frozen with the rest"
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # this process's modules, at least
        assert not any(obj is alive for obj in gc.get_objects())  # no longer scanned
        later = Node()
        assert any(obj is later for obj in gc.get_objects())  # what comes after still is
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
