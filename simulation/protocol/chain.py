"""The block tree: every valid block an employee knows, its fork choice (the longest
chain, or for the employer under EMPLOYER_FORK_CHOICE "declarers" the heaviest) and an
orphan pool for blocks whose parent has not arrived yet."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from simulation.protocol.ledger import Genesis, Ledger
from simulation.protocol.messages import WrappedBlock

MAX_ORPHANS = 256


@dataclass
class BlockRecord:
    hash: bytes
    height: int
    parent: bytes | None  # None for genesis
    block: WrappedBlock | None  # None for genesis
    ledger: Ledger  # state after this block
    tick: int
    children: list[bytes] = field(default_factory=list)
    weight: int = 0  # the chain's weight up to this block (``BlockTree`` weigh)


@dataclass(frozen=True)
class TipChange:
    """What adding a block did to the canonical chain."""

    old_tip: bytes
    new_tip: bytes
    abandoned: tuple[bytes, ...]  # blocks that left the canonical chain, tip first
    adopted: tuple[bytes, ...]  # blocks that joined it, oldest first

    @property
    def is_reorg(self) -> bool:
        return bool(self.abandoned)


class BlockTree:
    def __init__(self, genesis: Genesis,
                 weigh: Callable[[WrappedBlock], int] | None = None):
        """``weigh``: each block's weight for a heaviest-chain fork choice (None: the
        longest chain, every block weighs one)."""
        self.genesis = genesis
        self.weigh = weigh
        root = BlockRecord(genesis.hash, 0, None, None, genesis.ledger, 0)
        self.records: dict[bytes, BlockRecord] = {root.hash: root}
        self.tip_hash = root.hash
        self.orphans: dict[bytes, WrappedBlock] = {}  # by block hash
        self.forks = 0  # blocks added next to an existing sibling

    @property
    def genesis_hash(self) -> bytes:
        return self.genesis.hash

    @property
    def tip(self) -> BlockRecord:
        return self.records[self.tip_hash]

    def __contains__(self, block_hash: bytes) -> bool:
        return block_hash in self.records

    def get(self, block_hash: bytes) -> BlockRecord | None:
        return self.records.get(block_hash)

    def add(self, block: WrappedBlock, ledger: Ledger) -> TipChange | None:
        """Insert a validated block whose parent is known. Returns the tip change when
        the block makes a longer (or heavier) chain (first seen wins ties), else
        None."""
        parent = self.records[block.parent]
        if block.hash in self.records:
            return None
        record = BlockRecord(block.hash, parent.height + 1, parent.hash, block, ledger,
                             block.tick, weight=parent.weight + (
                                 1 if self.weigh is None else self.weigh(block)))
        if parent.children:
            self.forks += 1
        parent.children.append(record.hash)
        self.records[record.hash] = record
        if self.weigh is None and record.height <= self.tip.height:
            return None
        if self.weigh is not None and record.weight <= self.tip.weight:
            return None  # heaviest chain; first seen wins ties
        old = self.tip_hash
        self.tip_hash = record.hash
        return self._change(old, record.hash)

    def switch_tip(self, block_hash: bytes) -> TipChange:
        """Adopt another known block of the tip's height (a tie-break, never a shorter
        chain)."""
        if self.records[block_hash].height != self.tip.height:
            raise ValueError("switch_tip only moves between tips of equal height")
        old = self.tip_hash
        self.tip_hash = block_hash
        return self._change(old, block_hash)

    def _change(self, old: bytes, new: bytes) -> TipChange:
        old_path = self.path(old)
        new_path = self.path(new)
        common = 0
        while (common < len(old_path) and common < len(new_path)
               and old_path[common] == new_path[common]):
            common += 1
        abandoned = tuple(reversed(old_path[common:]))
        adopted = tuple(new_path[common:])
        return TipChange(old, new, abandoned, adopted)

    def path(self, block_hash: bytes) -> list[bytes]:
        """Block hashes from genesis to ``block_hash`` inclusive."""
        out = []
        current: bytes | None = block_hash
        while current is not None:
            out.append(current)
            current = self.records[current].parent
        out.reverse()
        return out

    def ancestor(self, block_hash: bytes, height: int) -> bytes:
        """The block at ``height`` on the path to ``block_hash`` (walks back only)."""
        record = self.records[block_hash]
        while record.height > height:
            record = self.records[record.parent]  # type: ignore[index]
        return record.hash

    def locator(self, limit: int) -> list[bytes]:
        """The canonical chain's hashes for a block request: the tip and the 9 blocks
        below it, then every 2nd, 4th, ... block back, genesis always last; at most
        ``limit`` (at least 2) hashes."""
        path = self.path(self.tip_hash)
        out: list[bytes] = []
        position, step = len(path) - 1, 1
        while position > 0 and len(out) < limit - 1:
            out.append(path[position])
            if len(out) >= 10:
                step *= 2
            position -= step
        out.append(path[0])
        return out

    def path_from(self, known: set[bytes], block_hash: bytes, limit: int) -> list[bytes]:
        """The blocks after the last one in ``known`` on the path to ``block_hash``, the
        oldest first, at most ``limit`` of them (for answering a block request)."""
        out = []
        current: bytes | None = block_hash
        while current is not None and current not in known:
            record = self.records[current]
            if record.parent is None:
                break  # genesis: every peer holds it
            out.append(current)
            current = record.parent
        out.reverse()
        return out[:limit]

    def canonical(self) -> list[BlockRecord]:
        return [self.records[h] for h in self.path(self.tip_hash)]

    def add_orphan(self, block: WrappedBlock, per_author: int | None = None) -> bool:
        """Keep a block whose parent is unknown; False when the pool is full. With
        ``per_author`` (rule bounded-state) each block author (Roy) holds at most that
        many orphans, its oldest evicted for a new one, and the pool is never full for
        anybody else."""
        if block.hash in self.orphans:
            return True
        if per_author is not None:
            own = [h for h, b in self.orphans.items() if b.author == block.author]
            if len(own) >= per_author:
                del self.orphans[own[0]]
        elif len(self.orphans) >= MAX_ORPHANS:
            return False
        self.orphans[block.hash] = block
        return True

    def take_orphans_of(self, parent_hash: bytes) -> list[WrappedBlock]:
        ready = [b for b in self.orphans.values() if b.parent == parent_hash]
        for block in ready:
            del self.orphans[block.hash]
        return sorted(ready, key=lambda b: b.hash)
