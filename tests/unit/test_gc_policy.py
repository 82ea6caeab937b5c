"""The record processor's collector settings (`consumer.gc_policy`)."""

from __future__ import annotations

import gc

from consumer.gc_policy import THRESHOLDS, processing_gc


def test_the_processing_settings_hold_within_the_block_and_the_previous_ones_after() -> None:
    # GIVEN the test process's own settings
    before = gc.get_threshold()
    assert before != THRESHOLDS
    # WHEN a block runs with the processor's settings
    with processing_gc():
        # THEN young collections wait for many more objects, and start-up's are frozen
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0
    # AND after it the process is as it was
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
