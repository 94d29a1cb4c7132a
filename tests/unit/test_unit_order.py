"""dms.plan.order: chunks of cut files are dealt round-robin across files, within bounds."""

from __future__ import annotations

from dms.plan.order import Interleaver


def dealer(width: int, **kw: int) -> tuple[Interleaver[str], list[str]]:
    out: list[str] = []
    return Interleaver(out.append, width, **kw), out


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


def test_held_chunks_wait_for_a_bounded_number_of_walked_files() -> None:
    order, out = dealer(4, max_wait_files=3)
    order.walked()  # nothing held: nothing counts
    order.add("a0", cut_file=1)
    order.add("b0", cut_file=2)
    order.walked()
    order.walked()
    assert out == []
    order.walked()  # the third file walked since a0 was held
    assert out == ["a0", "b0"]
    order.add("c0", cut_file=3)  # a new wait starts with the next held chunk
    order.walked()
    assert out == ["a0", "b0"]


def test_the_same_walk_gives_the_same_order() -> None:
    """A re-run plan must number its units as the first run did (units done are known by number)."""

    def deal() -> list[str]:
        order, out = dealer(3, max_held=7, max_wait_files=5)
        for f in range(6):
            for k in range(f % 4 + 1):
                order.add(f"{f}.{k}", cut_file=f)
            order.add(f"small{f}", cut_file=None)
            order.walked()
        order.drain()
        return out

    first = deal()
    assert first == deal() and len(first) == sum(f % 4 + 1 for f in range(6)) + 6


def test_width_one_emits_everything_at_once() -> None:
    order, out = dealer(1)
    for k in range(3):
        order.add(f"a{k}", cut_file=1)
    assert out == ["a0", "a1", "a2"]
