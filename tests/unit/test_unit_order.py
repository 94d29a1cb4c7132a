"""dms.unit_order: chunks of cut files are dealt round-robin across files, within bounds."""

from __future__ import annotations

from dms.unit_order import Interleaver


def dealer(width: int, **kw: float) -> tuple[Interleaver[str], list[str]]:
    out: list[str] = []
    return Interleaver(out.append, width, **kw), out  # type: ignore[arg-type]


def test_chunks_wait_for_width_files_then_go_round_robin() -> None:
    order, out = dealer(3)
    for f in "ab":
        for k in range(3):
            order.add(f"{f}{k}", cut_file=ord(f))
    assert out == [] and order.held == 6  # two files: not enough to interleave yet
    for k in range(2):
        order.add(f"c{k}", cut_file=ord("c"))
    assert out == ["a0", "b0", "c0", "a1", "b1", "c1"]  # c ran out: a2, b2 wait for company
    order.drain()
    assert out[6:] == ["a2", "b2"] and order.held == 0


def test_units_that_are_not_chunks_go_at_once() -> None:
    order, out = dealer(4)
    order.add("a0", cut_file=1)
    order.add("batch of small files", cut_file=None)
    assert out == ["batch of small files"] and order.held == 1


def test_held_chunks_are_bounded_in_number() -> None:
    order, out = dealer(4, max_held=5)
    for k in range(4):
        order.add(f"a{k}", cut_file=1)
    assert out == []
    order.add("a4", cut_file=1)
    assert out == ["a0", "a1", "a2", "a3", "a4"]  # one file alone: its own order


def test_held_chunks_are_bounded_in_age() -> None:
    now = [0.0]
    out: list[str] = []
    order = Interleaver(out.append, 4, max_wait=1.0, clock=lambda: now[0])
    order.add("a0", cut_file=1)
    order.add("b0", cut_file=2)
    now[0] = 0.5
    order.tick()
    assert out == []
    now[0] = 1.0
    order.tick()  # the walk goes on with other entries: the wait is over
    assert out == ["a0", "b0"]
    order.add("c0", cut_file=3)  # a new wait starts with the next held chunk
    assert out == ["a0", "b0"]


def test_width_one_emits_everything_at_once() -> None:
    order, out = dealer(1)
    for k in range(3):
        order.add(f"a{k}", cut_file=1)
    assert out == ["a0", "a1", "a2"]
