"""payments/groupcommit.py: the writes of threads storing at the same moment share one
call, every item is written exactly once, and one bad item fails only its own thread."""

from __future__ import annotations

import threading

import pytest

from payments.groupcommit import GroupCommit


class Recorder:
    """A ``write`` that records each call; the first call waits for ``release`` so
    that the other threads queue up behind it."""

    def __init__(self, *, bad: set[int] | None = None) -> None:
        self.calls: list[list[int]] = []
        self.written: list[int] = []
        self.bad = bad or set()
        self.first_entered = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()

    def write(self, items: list[int]) -> None:
        with self.lock:
            self.calls.append(list(items))
            first = len(self.calls) == 1
        if first:
            self.first_entered.set()
            assert self.release.wait(10)
        if self.bad & set(items):
            raise ValueError(f"bad item in {items}")
        with self.lock:
            self.written.extend(items)


def submit_all(group: GroupCommit[int], items: list[int], recorder: Recorder, queued) -> dict:
    """Item 0 leads and blocks in write; the rest are submitted meanwhile; once
    ``queued`` says they are all waiting, the leader is released."""
    outcomes: dict[int, object] = {}

    def run(item: int) -> None:
        try:
            group.submit(item)
        except BaseException as error:  # noqa: BLE001 (the interrupted leader's, too)
            outcomes[item] = error
        else:
            outcomes[item] = "ok"

    leader = threading.Thread(target=run, args=(items[0],))
    leader.start()
    assert recorder.first_entered.wait(10)
    followers = [threading.Thread(target=run, args=(item,)) for item in items[1:]]
    for thread in followers:
        thread.start()
    for _ in range(1000):
        if queued():
            break
        threading.Event().wait(0.01)
    recorder.release.set()
    for thread in [leader, *followers]:
        thread.join(10)
        assert not thread.is_alive()
    return outcomes


def test_threads_arriving_while_one_writes_are_written_together_once_each():
    recorder = Recorder()
    group = GroupCommit(recorder.write)

    outcomes = submit_all(group, list(range(9)), recorder, lambda: len(group._queue) == 8)

    assert outcomes == {item: "ok" for item in range(9)}
    assert recorder.calls[0] == [0]
    assert sorted(recorder.calls[1]) == list(range(1, 9))  # one call for the 8 queued
    assert len(recorder.calls) == 2
    assert sorted(recorder.written) == list(range(9))


def test_a_group_is_at_most_max_group_items():
    recorder = Recorder()
    group = GroupCommit(recorder.write, max_group=3)

    outcomes = submit_all(group, list(range(8)), recorder, lambda: len(group._queue) == 7)

    assert set(outcomes.values()) == {"ok"}
    assert [len(call) for call in recorder.calls] == [1, 3, 3, 1]
    assert sorted(recorder.written) == list(range(8))


def test_a_bad_item_fails_only_its_own_thread_the_others_are_written_alone():
    recorder = Recorder(bad={5})
    group = GroupCommit(recorder.write)

    outcomes = submit_all(group, list(range(9)), recorder, lambda: len(group._queue) == 8)

    assert isinstance(outcomes.pop(5), ValueError)
    assert set(outcomes.values()) == {"ok"}
    # The group of 8 failed as a whole, then each of its items was written alone.
    assert len(recorder.calls[1]) == 8
    assert sorted(call[0] for call in recorder.calls[2:]) == list(range(1, 9))
    assert all(len(call) == 1 for call in recorder.calls[2:])
    assert sorted(recorder.written) == [0, 1, 2, 3, 4, 6, 7, 8]  # once each, 5 never


def test_a_thread_alone_writes_at_once_and_sees_its_own_error():
    calls = []

    def write(items):
        calls.append(items)
        if items == ["bad"]:
            raise RuntimeError("lỗi")

    group = GroupCommit(write)
    group.submit("good")
    with pytest.raises(RuntimeError, match="lỗi"):
        group.submit("bad")
    group.submit("after")
    assert calls == [["good"], ["bad"], ["after"]]


def test_the_followers_of_an_interrupted_leader_are_told_nothing_was_written():
    recorder = Recorder()

    def write(items):
        if items != [0]:
            recorder.calls.append(items)
            raise KeyboardInterrupt  # not the items' fault: the leader's thread is stopping
        recorder.write(items)

    group = GroupCommit(write)
    outcomes = submit_all(group, [0, 1, 2], recorder, lambda: len(group._queue) == 2)

    assert outcomes[0] == "ok"
    assert sorted(recorder.calls[1]) == [1, 2]
    led_by, follower = recorder.calls[1]
    assert isinstance(outcomes[led_by], KeyboardInterrupt)
    assert isinstance(outcomes[follower], RuntimeError)  # never "ok": nothing was written
    assert "nothing was written" in str(outcomes[follower])
    assert recorder.written == [0]
