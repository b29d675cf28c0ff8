"""memory.py: the malloc arena limit and the trimmer of `kanal serve` (#18)."""

from __future__ import annotations

import gc

import pytest

from kanal_collector import memory


def test_limit_arenas_leaves_the_environment_setting_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.limit_arenas(2) is False


@pytest.mark.parametrize(("call", "message"), [
    (lambda: memory.limit_arenas(0), "arenas must be at least 1"),
    (lambda: memory.Trimmer(0), "interval must be positive"),
])
def test_bad_arguments_are_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_trim_answers_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_LIBC", None)
    assert memory.trim() is False
    assert memory.limit_arenas(2) is False
    trimmer = memory.Trimmer(0.01)
    trimmer.start()  # nothing to run: no thread
    assert trimmer._thread is None
    trimmer.stop()


def test_the_trimmer_trims_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    class FakeLibc:
        def malloc_trim(self, pad: int) -> int:
            calls.append(pad)
            if len(calls) == 3:
                trimmer._stop.set()
            return 1

    monkeypatch.setattr(memory, "_LIBC", FakeLibc())
    trimmer = memory.Trimmer(0.001)
    trimmer.start()
    assert trimmer._thread is not None
    trimmer._thread.join(10)
    trimmer.stop()
    assert calls == [0, 0, 0]


def test_freezing_start_up_leaves_its_objects_out_of_the_collectors_walks() -> None:
    made_at_start_up = {"kept": [1, 2, 3]}
    assert gc.is_tracked(made_at_start_up)
    frozen = gc.get_freeze_count()
    try:
        memory.freeze_start_up()
        assert gc.get_freeze_count() > frozen
        # A full collection walks the three generations; frozen objects are in none.
        assert not any(o is made_at_start_up for o in gc.get_objects())
        made_later: dict[str, list[int]] = {"kept": []}
        assert any(o is made_later for o in gc.get_objects())
    finally:
        gc.unfreeze()
