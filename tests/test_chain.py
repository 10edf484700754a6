"""The block tree: longest chain, first seen wins ties, reorganisations, orphans."""

from __future__ import annotations

import itertools

import pytest

from simulation.protocol import chain
from simulation.protocol.chain import BlockTree
from simulation.protocol.encoding import derive_keypair, sha256
from simulation.protocol.ledger import Ledger, make_genesis
from simulation.protocol.messages import BlockHeader, WrappedBlock

KEYS = derive_keypair(1, "employee", 0)
_serial = itertools.count()


def genesis():
    return make_genesis(seed=1, model_id="m", employees_num=3, users_num=0,
                        genesis_stake=10, user_max_balance=1)


def block(parent: bytes, height: int, tick: int = 0, roy=KEYS) -> WrappedBlock:
    """A structurally complete block (the tree does not validate; that is not its job),
    wrapped (so authored) by ``roy``. Every call gives a different block."""
    header = BlockHeader.create(
        KEYS, model_id="m", stage_id=f"m:{height - 1}", height=height, parent=parent,
        tick=tick, secret=sha256(next(_serial).to_bytes(8, "big")), declarations=[],
        coinstake=1,
    )
    return WrappedBlock.create(roy, header=header, signatures=[], transactions=[],
                               payouts=[], tick=tick)


def ledger(tag: int) -> Ledger:
    return Ledger({sha256(b"x"): tag}, {})


def add_chain(tree: BlockTree, parent: bytes, length: int) -> list[WrappedBlock]:
    blocks = []
    height = tree.get(parent).height
    for _ in range(length):
        height += 1
        b = block(parent, height)
        tree.add(b, ledger(height))
        blocks.append(b)
        parent = b.hash
    return blocks


def test_a_new_tree_holds_genesis_only():
    g = genesis()
    tree = BlockTree(g)
    assert tree.tip_hash == g.hash == tree.genesis_hash
    assert tree.tip.height == 0 and tree.tip.ledger == g.ledger
    assert [r.hash for r in tree.canonical()] == [g.hash]
    assert g.hash in tree and tree.forks == 0 and tree.orphans == {}


def test_extending_the_tip_moves_it():
    tree = BlockTree(genesis())
    b1 = block(tree.tip_hash, 1, tick=5)
    change = tree.add(b1, ledger(1))
    assert change is not None and not change.is_reorg
    assert change.old_tip == tree.genesis_hash and change.new_tip == b1.hash
    assert change.adopted == (b1.hash,) and change.abandoned == ()
    record = tree.get(b1.hash)
    assert (record.height, record.parent, record.tick, record.ledger) == (
        1, tree.genesis_hash, 5, ledger(1))
    assert tree.tip_hash == b1.hash
    assert tree.get(tree.genesis_hash).children == [b1.hash]


def test_longest_chain_wins():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 2)
    b = add_chain(tree, tree.genesis_hash, 3)
    assert tree.tip_hash == b[-1].hash
    assert [r.hash for r in tree.canonical()] == [tree.genesis_hash] + [x.hash for x in b]
    assert tree.tip.ledger == ledger(3)
    assert a[-1].hash in tree


def test_first_seen_wins_a_tie():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 2)
    b1 = block(tree.genesis_hash, 1)
    assert tree.add(b1, ledger(1)) is None
    b2 = block(b1.hash, 2)
    assert tree.add(b2, ledger(2)) is None  # same height as the tip: no change
    assert tree.tip_hash == a[-1].hash


def test_a_heaviest_chain_tree_keeps_a_shorter_heavier_branch_over_a_longer_light_one():
    """EMPLOYER_FORK_CHOICE "declarers": the weight decides, not the length; first seen
    wins a tie of weight."""
    weights: dict[bytes, int] = {}
    tree = BlockTree(genesis(), weigh=lambda b: weights[b.hash])
    heavy = block(tree.genesis_hash, 1)
    weights[heavy.hash] = 7
    assert tree.add(heavy, ledger(1)) is not None
    light = []
    parent = tree.genesis_hash
    for height in range(1, 8):  # 7 blocks of weight 1: 7 in all, a tie
        b = block(parent, height)
        weights[b.hash] = 1
        assert tree.add(b, ledger(height)) is None
        light.append(b)
        parent = b.hash
    assert tree.tip_hash == heavy.hash and tree.get(light[-1].hash).weight == 7
    b = block(parent, 8)
    weights[b.hash] = 1
    change = tree.add(b, ledger(8))  # 8 > 7: now the longer branch is heavier too
    assert change is not None and change.abandoned == (heavy.hash,)
    assert tree.tip_hash == b.hash


def test_a_shorter_branch_does_not_move_the_tip():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 3)
    assert tree.add(block(a[0].hash, 2), ledger(2)) is None
    assert tree.tip_hash == a[-1].hash


def test_reorg_reports_abandoned_and_adopted_blocks():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 3)
    b = add_chain(tree, a[0].hash, 2)  # ties at height 3: no switch yet
    assert tree.tip_hash == a[-1].hash
    b3 = block(b[-1].hash, 4)
    change = tree.add(b3, ledger(4))
    assert change is not None and change.is_reorg
    assert change.old_tip == a[-1].hash and change.new_tip == b3.hash
    assert change.abandoned == (a[2].hash, a[1].hash)  # tip first
    assert change.adopted == (b[0].hash, b[1].hash, b3.hash)  # oldest first
    assert tree.path(b3.hash) == [tree.genesis_hash, a[0].hash, b[0].hash, b[1].hash,
                                  b3.hash]


def test_reorg_from_genesis():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 1)
    b = add_chain(tree, tree.genesis_hash, 1)
    b2 = block(b[0].hash, 2)
    change = tree.add(b2, ledger(2))
    assert change.abandoned == (a[0].hash,)
    assert change.adopted == (b[0].hash, b2.hash)


def test_forks_counter_counts_blocks_next_to_a_sibling():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 2)
    assert tree.forks == 0
    add_chain(tree, tree.genesis_hash, 1)
    assert tree.forks == 1
    add_chain(tree, tree.genesis_hash, 1)
    assert tree.forks == 2
    add_chain(tree, a[0].hash, 1)
    assert tree.forks == 3
    assert len(tree.get(tree.genesis_hash).children) == 3


def test_adding_a_known_block_again_changes_nothing():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 1)
    b = add_chain(tree, tree.genesis_hash, 1)
    forks = tree.forks
    assert tree.add(a[0], ledger(99)) is None
    assert tree.add(b[0], ledger(99)) is None
    assert tree.forks == forks
    assert tree.get(tree.genesis_hash).children == [a[0].hash, b[0].hash]
    assert tree.get(a[0].hash).ledger == ledger(1)


def test_adding_a_block_with_unknown_parent_is_a_caller_error():
    tree = BlockTree(genesis())
    with pytest.raises(KeyError):
        tree.add(block(sha256(b"unknown"), 1), ledger(1))


# --- Orphans ---------------------------------------------------------------------------------


def test_orphans_are_held_and_released_by_parent():
    tree = BlockTree(genesis())
    b1 = block(tree.genesis_hash, 1)
    children = [block(b1.hash, 2) for _ in range(3)]
    stranger = block(sha256(b"elsewhere"), 5)
    for orphan in [*children, stranger]:
        assert tree.add_orphan(orphan)
    assert len(tree.orphans) == 4
    assert tree.take_orphans_of(sha256(b"nothing")) == []
    released = tree.take_orphans_of(b1.hash)
    assert released == sorted(children, key=lambda b: b.hash)
    assert list(tree.orphans) == [stranger.hash]
    assert tree.take_orphans_of(b1.hash) == []  # released only once


def test_adding_the_same_orphan_twice_keeps_one():
    tree = BlockTree(genesis())
    orphan = block(sha256(b"elsewhere"), 2)
    assert tree.add_orphan(orphan) and tree.add_orphan(orphan)
    assert len(tree.orphans) == 1


def test_the_orphan_pool_is_bounded(monkeypatch):
    monkeypatch.setattr(chain, "MAX_ORPHANS", 5)
    tree = BlockTree(genesis())
    orphans = [block(sha256(b"elsewhere"), 2) for _ in range(6)]
    assert all(tree.add_orphan(o) for o in orphans[:5])
    assert not tree.add_orphan(orphans[5])
    assert len(tree.orphans) == 5
    assert tree.add_orphan(orphans[0])  # a known one is still "held"
    tree.take_orphans_of(sha256(b"elsewhere"))
    assert tree.add_orphan(orphans[5])  # room again


def test_the_default_orphan_bound_holds():
    tree = BlockTree(genesis())
    parent = sha256(b"elsewhere")
    for _ in range(chain.MAX_ORPHANS):
        assert tree.add_orphan(block(parent, 2))
    assert not tree.add_orphan(block(parent, 2))
    assert len(tree.orphans) == chain.MAX_ORPHANS


def test_the_per_author_bound_evicts_that_authors_oldest_orphan():
    # Rule bounded-state: a Roy flooding orphans only pushes out his own oldest one.
    tree = BlockTree(genesis())
    roy, other = derive_keypair(1, "employee", 1), derive_keypair(1, "employee", 2)
    parent = sha256(b"elsewhere")
    first, second = block(parent, 2, roy=roy), block(parent, 2, roy=roy)
    bystander = block(parent, 2, roy=other)
    third = block(parent, 2, roy=roy)
    for orphan in (first, second, bystander):
        assert tree.add_orphan(orphan, per_author=2)
    assert tree.add_orphan(first, per_author=2)  # already held: nothing evicted
    assert list(tree.orphans) == [first.hash, second.hash, bystander.hash]
    assert tree.add_orphan(third, per_author=2)
    assert list(tree.orphans) == [second.hash, bystander.hash, third.hash]


def test_a_per_author_bound_of_one_keeps_the_newest_orphan():
    tree = BlockTree(genesis())
    roy = derive_keypair(1, "employee", 1)
    orphans = [block(sha256(b"elsewhere"), 2, roy=roy) for _ in range(3)]
    for orphan in orphans:
        assert tree.add_orphan(orphan, per_author=1)
        assert list(tree.orphans) == [orphan.hash]


def test_with_a_per_author_bound_the_pool_is_never_full(monkeypatch):
    monkeypatch.setattr(chain, "MAX_ORPHANS", 2)
    tree = BlockTree(genesis())
    roys = [derive_keypair(1, "employee", i) for i in range(3)]
    orphans = [block(sha256(b"elsewhere"), 2, roy=r) for r in roys for _ in range(2)]
    assert all(tree.add_orphan(o, per_author=2) for o in orphans)
    assert list(tree.orphans) == [o.hash for o in orphans]


# --- Genesis record, tie switches, the tip-change diff -------------------------------------


def test_the_root_record_is_genesis_at_tick_zero():
    g = genesis()
    root = BlockTree(g).get(g.hash)
    # Lotteries on genesis start counting at the root's tick.
    assert (root.hash, root.height, root.parent, root.block, root.ledger, root.tick,
            root.children) == (g.hash, 0, None, None, g.ledger, 0, [])


def test_switch_tip_moves_between_equal_height_forks_and_back():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 3)
    b = add_chain(tree, a[0].hash, 2)  # forks above genesis, ties with a at height 3
    change = tree.switch_tip(b[-1].hash)
    assert tree.tip_hash == b[-1].hash
    assert change == chain.TipChange(a[-1].hash, b[-1].hash, (a[2].hash, a[1].hash),
                                      (b[0].hash, b[1].hash))
    back = tree.switch_tip(a[-1].hash)
    assert tree.tip_hash == a[-1].hash
    assert back == chain.TipChange(b[-1].hash, a[-1].hash, (b[1].hash, b[0].hash),
                                    (a[1].hash, a[2].hash))


def test_switch_tip_to_the_tip_itself_changes_nothing():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 2)
    change = tree.switch_tip(a[-1].hash)
    assert change == chain.TipChange(a[-1].hash, a[-1].hash, (), ())
    assert not change.is_reorg


def test_switch_tip_never_moves_to_another_height():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 2)
    shorter = add_chain(tree, tree.genesis_hash, 1)
    for target in (shorter[0].hash, a[0].hash, tree.genesis_hash):
        with pytest.raises(ValueError):
            tree.switch_tip(target)
        assert tree.tip_hash == a[-1].hash


def test_the_tip_change_diff_handles_moves_along_one_chain():
    # _change is the general diff of two tips: callers only move up or sideways, but a
    # move down (new tip an ancestor of the old) must abandon exactly the blocks above.
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 3)
    down = tree._change(a[2].hash, a[0].hash)
    assert (down.abandoned, down.adopted) == ((a[2].hash, a[1].hash), ())
    up = tree._change(a[0].hash, a[2].hash)
    assert (up.abandoned, up.adopted) == ((), (a[1].hash, a[2].hash))
    to_genesis = tree._change(a[2].hash, tree.genesis_hash)
    assert to_genesis.abandoned == (a[2].hash, a[1].hash, a[0].hash)
    assert to_genesis.adopted == ()


# --- Catch-up: locator, path_from, ancestor -----------------------------------------------


def test_the_locator_of_a_new_tree_is_genesis_alone():
    tree = BlockTree(genesis())
    assert tree.locator(64) == [tree.genesis_hash]


def test_the_locator_of_a_short_chain_lists_every_block_tip_first():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 3)
    assert tree.locator(64) == [a[2].hash, a[1].hash, a[0].hash, tree.genesis_hash]


def test_the_locator_takes_ten_blocks_then_doubles_its_step():
    tree = BlockTree(genesis())
    add_chain(tree, tree.genesis_hash, 30)
    path = tree.path(tree.tip_hash)  # path[h] is the canonical block at height h
    # Heights 30..21 (the tip and the 9 below), then steps of 2, 4, 8; genesis last.
    heights = [*range(30, 20, -1), 19, 15, 7, 0]
    assert tree.locator(64) == [path[h] for h in heights]


def test_the_locator_is_cut_to_its_limit_and_still_ends_in_genesis():
    tree = BlockTree(genesis())
    add_chain(tree, tree.genesis_hash, 30)
    path = tree.path(tree.tip_hash)
    assert tree.locator(5) == [path[30], path[29], path[28], path[27], path[0]]
    assert tree.locator(2) == [path[30], path[0]]
    assert tree.locator(14) == tree.locator(64)  # exactly long enough: nothing cut


def test_the_locator_follows_the_canonical_chain():
    tree = BlockTree(genesis())
    add_chain(tree, tree.genesis_hash, 3)
    b = add_chain(tree, tree.genesis_hash, 4)  # overtakes a at height 4
    assert tree.locator(64) == [x.hash for x in reversed(b)] + [tree.genesis_hash]


def test_path_from_sends_the_blocks_after_the_last_known_one_oldest_first():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 5)
    known = {tree.genesis_hash, a[0].hash, a[1].hash}
    assert tree.path_from(known, a[4].hash, 100) == [a[2].hash, a[3].hash, a[4].hash]
    assert tree.path_from({a[3].hash}, a[4].hash, 100) == [a[4].hash]
    assert tree.path_from({a[4].hash}, a[4].hash, 100) == []  # the requester has it


def test_path_from_without_a_known_block_stops_below_genesis():
    # Genesis is never sent: every peer holds it, even when the locator does not say so.
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 3)
    want = [x.hash for x in a]
    assert tree.path_from(set(), a[2].hash, 100) == want
    assert tree.path_from({sha256(b"a block nobody has")}, a[2].hash, 100) == want
    assert tree.path_from(set(), tree.genesis_hash, 100) == []


def test_path_from_answers_a_locator_from_the_other_fork():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 4)
    requester_locator = tree.locator(64)  # the requester follows a
    b = add_chain(tree, a[1].hash, 4)  # parts from a above a[1]
    assert tree.path_from(set(requester_locator), b[-1].hash, 100) == [x.hash for x in b]


def test_path_from_keeps_the_oldest_blocks_within_its_limit():
    # The requester can attach only blocks whose parent it has: the oldest go first.
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 5)
    assert tree.path_from({tree.genesis_hash}, a[4].hash, 2) == [a[0].hash, a[1].hash]


def test_ancestor_walks_back_to_the_given_height():
    tree = BlockTree(genesis())
    a = add_chain(tree, tree.genesis_hash, 5)
    b = add_chain(tree, a[1].hash, 2)
    assert tree.ancestor(a[4].hash, 2) == a[1].hash
    assert tree.ancestor(a[4].hash, 5) == a[4].hash
    assert tree.ancestor(a[4].hash, 0) == tree.genesis_hash
    assert tree.ancestor(b[1].hash, 3) == b[0].hash
    assert tree.ancestor(b[1].hash, 1) == a[0].hash
    assert tree.ancestor(a[1].hash, 4) == a[1].hash  # walks back only, never up
