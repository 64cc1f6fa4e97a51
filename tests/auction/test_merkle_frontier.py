"""The bid-set tree kept as leaves are appended (auction.encoding.MerkleFrontier) gives
``compute_merkle_root``'s root for every prefix, followed by any further leaves."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.encoding import MerkleFrontier, compute_merkle_root


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=140), st.data())
def test_every_prefix_and_tail_gives_the_root_from_scratch(leaves: list[bytes],
                                                           data: st.DataObject) -> None:
    tree = MerkleFrontier()
    for leaf in leaves:
        tree.append(leaf)
    assert len(tree) == len(leaves)
    n = data.draw(st.integers(0, len(leaves)))
    more = data.draw(st.lists(st.binary(min_size=32, max_size=32), max_size=20))
    assert tree.root(n) == compute_merkle_root(leaves[:n])
    assert tree.root(n, more) == compute_merkle_root(leaves[:n] + more)
    assert tree.root(len(leaves), more) == compute_merkle_root(leaves + more)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 255, 256, 257, 2000, 2048, 2049])
def test_sizes_around_powers_of_two(size: int) -> None:
    leaves = [i.to_bytes(32, "big") for i in range(size)]
    tree = MerkleFrontier()
    for leaf in leaves:
        tree.append(leaf)
    assert tree.root(size) == compute_merkle_root(leaves)
    assert tree.root(size - 1, leaves[-1:]) == compute_merkle_root(leaves)
    assert tree.root(0, leaves) == compute_merkle_root(leaves)
    assert MerkleFrontier().root(0) == compute_merkle_root([]) == bytes(32)


def test_a_prefix_longer_than_the_tree_is_refused() -> None:
    tree = MerkleFrontier()
    tree.append(bytes(32))
    with pytest.raises(ValueError):
        tree.root(2)
