"""The attacks a protocol reviewer tries first, as adversary strategies.

Like those in ``adversaries``, each is a small behaviour (``node.behaviour``). Each uses the room
the scenario's rules leave it (``protocol.rules``): with every rule in force most find
none, and with a rule left open (OPEN_RULES) they show what that rule closes. Their
tests (tests/test_attacks.py) run each both ways.

Grinding is bounded: every hash an attacker tries for its search (a lottery kernel, a
stakeholder draw, a candidate block) costs one of its GRIND_TRIES_PER_TICK tries of the
tick, and its report counts them under ``attack``: ``tries``, ``found`` (headers it found
with the draw it wanted) and ``ground`` (blocks it chose as Roy for an early next round
of its coalition).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from functools import cached_property

from simulation.config import POISONED_TRAINING, Role
from simulation.node.adversaries import Lazy, assign_adversaries
from simulation.node.behaviour import Behaviour
from simulation.node.employee import INFO, short
from simulation.protocol import lottery
from simulation.protocol.chain import BlockRecord
from simulation.protocol.encoding import KeyPair, derive_keypair, sha256
from simulation.protocol.ledger import Ledger
from simulation.protocol.messages import (
    BH,
    MAX_LOCATOR,
    TD,
    BlockHeader,
    BlockRequest,
    TrainingDeclaration,
    WrappedBlock,
)
from simulation.protocol.rules import slot_of
from simulation.protocol.stages import StageResult, stage_id
from simulation.protocol.validation import kernel_of, stakeholders_for

FRESH_KEYS = 4096  # fresh (non-employee) keys an attacker holds, tried in turn
SIGNED_BLOCK_TRIES = 20  # a candidate block costs a signature: about 20 kernels' time


class Attacker(Behaviour):
    """What the attacks share: the tick's budget of tries, the coalition (the employees
    of its own behaviour, or of ``colluding``), fresh keys and the searches."""

    colluding: tuple[str, ...] = ()
    grinds_blocks = False  # as Roy, grinds its block (``_ground_block``)

    def __init__(self) -> None:
        self._budget = 0
        self._fresh: list[KeyPair] = []
        self._fresh_turn = 0
        self._good_header: dict[bytes, int] = {}  # parent -> tick of a wanted header
        # (parent, tick) -> whether its own header there would draw what it wants
        self._own_tries: dict[tuple[bytes, int], bool] = {}

    @cached_property
    def coalition(self) -> frozenset[bytes]:
        node = self.node
        kinds = self.colluding or (self.role,)
        roles = assign_adversaries(node.scenario)
        members = {node.genesis.employees[i] for i, b in roles.items() if b in kinds}
        return frozenset(members | {node.keys.public})

    def begin_step(self, tick: int) -> None:
        self._budget = self.node.scenario.grind_tries_per_tick

    # --- Tries ---------------------------------------------------------------------

    def _spend(self, n: int = 1) -> bool:
        if self._budget < n:
            return False
        self._budget -= n
        self.node.attack["tries"] += n
        return True

    def _wins(self, kind: str, author: bytes, parent: bytes, sid: str, tick: int
              ) -> bool | None:
        """One lottery try (None: out of tries this tick)."""
        if not self._spend():
            return None
        scenario = self.node.scenario
        coinstake = scenario.td_coinstake if kind == TD else scenario.bh_coinstake
        return lottery.wins(kernel_of(scenario, kind, author, parent, sid, tick), coinstake)

    def _draw(self, author: bytes, parent: bytes, ledger: Ledger, sid: str, tick: int
              ) -> list[bytes] | None:
        if not self._spend():
            return None
        return stakeholders_for(self.node.scenario, self.node.genesis, ledger, author, parent, sid,
                                tick)

    def _fresh_key(self) -> KeyPair:
        """The next of FRESH_KEYS keys no employee holds (a Sybil)."""
        if self._fresh_turn == len(self._fresh) and len(self._fresh) < FRESH_KEYS:
            self._fresh.append(derive_keypair(self.node.scenario.seed, f"fresh-{self.node.index}",
                                              len(self._fresh)))
        key = self._fresh[self._fresh_turn % len(self._fresh)]
        self._fresh_turn = (self._fresh_turn + 1) % FRESH_KEYS
        return key

    def _earliest(self, parent: BlockRecord, kind: str) -> int:
        """The oldest tick a round message may claim now, as far as the rules check."""
        node = self.node
        lowest = parent.tick
        if node.rules.tick_window:
            lowest = max(lowest, node.now - node.scenario.tick_window)
        if kind == BH and node.rules.roy_rules:
            # Its block must follow within TICK_WINDOW: leave the signatures and the
            # wrapping a few ticks.
            lowest = max(lowest, node.now - node.scenario.tick_window + 4)
        if kind == TD and node.rules.stage_time:
            lowest = max(lowest, parent.tick + node.ctx.min_stage_ticks)
        return lowest

    def _first_win(self, kind: str, author: bytes, parent: bytes, sid: str,
                   ticks: Iterable[int]) -> int | None:
        for tick in ticks:
            won = self._wins(kind, author, parent, sid, tick)
            if won is None:
                return None
            if won:
                return tick
        return None

    def _wanted(self, draw: list[bytes]) -> bool:
        """Whether a header with these stakeholders serves the attack."""
        raise NotImplementedError

    def _search_own_header(self, parent: BlockRecord, sid: str, since: int) -> int | None:
        """A tick in [since, now] at which this employee's header would win its lottery
        and draw stakeholders it wants (and that no header of its own holds yet)."""
        node = self.node
        me = node.keys.public
        if len(self._own_tries) > 50_000:
            self._own_tries.clear()
        for tick in range(max(since, self._earliest(parent, BH)), node.now + 1):
            key = (me, parent.hash, slot_of(node.scenario, tick)) if node.rules.draw \
                else (me, parent.hash, tick)
            if key in node.header_for_win:
                continue  # its header for this win (rule draw: this slot) is out
            wanted = self._own_tries.get((parent.hash, tick))
            if wanted is None:
                won = self._wins(BH, me, parent.hash, sid, tick)
                if won is None:
                    return None
                draw = self._draw(me, parent.hash, parent.ledger, sid, tick) if won else []
                if draw is None:
                    return None
                wanted = self._own_tries[(parent.hash, tick)] = bool(draw) and \
                    self._wanted(draw)
            if wanted:
                return tick
        return None

    def _search_fresh_header(self, parent: BlockRecord, sid: str
                             ) -> tuple[KeyPair, int, int] | None:
        """A fresh key, a header tick and a declaration tick in the rules' range at
        which both its lotteries win and the header draws stakeholders it wants."""
        first = self._earliest(parent, BH)
        while self._budget > 0:
            key = self._fresh_key()
            for tick in range(first, self.node.now + 1):
                won = self._wins(BH, key.public, parent.hash, sid, tick)
                if won is None:
                    return None
                if not won:
                    continue
                draw = self._draw(key.public, parent.hash, parent.ledger, sid, tick)
                if draw is None:
                    return None
                if not self._wanted(draw):
                    continue
                declared = self._first_win(TD, key.public, parent.hash, sid,
                                           range(self._earliest(parent, TD), tick + 1))
                if declared is not None:
                    return key, tick, declared
        return None

    def _fresh_declarations(self, parent: BlockRecord, stage: int, sid: str, own: StageResult,
                            latest: int, count: int) -> list[TrainingDeclaration]:
        """Up to ``count`` declarations by fresh keys that win their lottery at a tick
        up to ``latest``."""
        out: list[TrainingDeclaration] = []
        ticks = range(self._earliest(parent, TD), latest + 1)
        while len(out) < count and self._budget > 0:
            key = self._fresh_key()
            tick = self._first_win(TD, key.public, parent.hash, sid, ticks)
            if tick is not None:
                out.append(self._declaration_of(key, parent.hash, stage, sid, own, tick))
        return out

    def _declaration_of(self, key: KeyPair, parent: bytes, stage: int, sid: str,
                        own: StageResult, tick: int) -> TrainingDeclaration:
        node = self.node
        secret = self.personal_secret(stage, key.public) if node.rules.personal_secrets \
            else own.secret
        return TrainingDeclaration.create(
            key, model_id=node.model_id, stage_id=sid, parent=parent, tick=tick,
            model_hash=own.model_hash, secret=secret, coinstake=node.scenario.td_coinstake)

    def _publish_wanted(self, parent: BlockRecord, stage: int, sid: str, own: StageResult,
                        author: KeyPair, tick: int,
                        declarations: list[TrainingDeclaration]) -> None:
        """A header found by a search, with the declarations it needs (fresh ones where
        the rules let strangers declare)."""
        node = self.node
        authors = {td.author for td in declarations}
        declarations += [td for a, td in node.rounds[parent.hash].declarations.items()
                         if a not in authors and td.tick <= tick]
        missing = node.scenario.employer_confidence - len(declarations)
        if missing > 0 and not node.rules.members:
            declarations += self._fresh_declarations(parent, stage, sid, own, tick, missing)
        if len(declarations) < node.scenario.employer_confidence:
            return
        if node.rules.header_cap:
            declarations = declarations[:node.scenario.max_header_declarations]
        header = node.make_header(parent.hash, stage, sid, own, tick, keys=author,
                                  declarations=declarations)
        self._good_header[parent.hash] = node.now
        node.attack["found"] += 1
        self.publish_header(header)

    # --- Grinding Roy's block --------------------------------------------------------

    def _block_matters(self) -> bool:
        """Whether a block's hash can change the next round's lotteries or draws."""
        return not (self.node.rules.draw and self.node.rules.lottery_kernel)

    def _next_round_delay(self, block: WrappedBlock, ledger: Ledger, horizon: int
                          ) -> int | None:
        """Ticks after ``block`` until the coalition could publish a header of the next
        round with a draw it wants: EMPLOYER_CONFIDENCE members have won the declaration
        lottery by then, the author among them, and the author wins the header lottery
        (``horizon`` if none in sight; None: out of tries)."""
        node = self.node
        sid = stage_id(node.model_id, block.height)
        first_td = block.tick + (node.ctx.min_stage_ticks if node.rules.stage_time else 0)
        declared: set[bytes] = set()
        for offset in range(horizon):
            tick = block.tick + offset
            for member in sorted(self.coalition - declared):
                if tick < first_td:
                    break
                won = self._wins(TD, member, block.hash, sid, tick)
                if won is None:
                    return None
                if won:
                    declared.add(member)
            if len(declared) < node.scenario.employer_confidence:
                continue
            for member in sorted(declared):
                won = self._wins(BH, member, block.hash, sid, tick)
                if won is None:
                    return None
                if won:
                    draw = self._draw(member, block.hash, ledger, sid, tick)
                    if draw is None:
                        return None
                    if self._wanted(draw):
                        return offset
        return horizon

    def _ground_block(self, header: BlockHeader) -> WrappedBlock:
        """Roy's block, chosen among the ticks and transaction prefixes the rules allow
        for the earliest next round that serves the coalition."""
        node = self.node
        honest = node.build_block(header, node.scenario.max_block_transactions)
        if not self._block_matters():
            return honest
        parent = node.tree.records[header.parent]
        latest = node.now if not node.rules.roy_rules else \
            min(node.now, header.tick + node.scenario.tick_window)
        horizon = node.scenario.round_timeout_ticks
        best: tuple[int, WrappedBlock] | None = None
        for tick in range(latest, header.tick - 1, -1):
            for count in range(len(honest.transactions), -1, -1):
                if not self._spend(SIGNED_BLOCK_TRIES):
                    break
                block = node.build_block(header, count, tick)
                ledger = parent.ledger.apply(block.transactions, block.payouts)
                delay = self._next_round_delay(block, ledger, horizon)
                if delay is None:
                    break
                if best is None or delay < best[0]:
                    best = (delay, block)
                if delay == 0:
                    break
            if best is not None and best[0] == 0:
                break
        if best is None or best[0] >= horizon:
            return honest
        node.attack["ground"] += 1
        node.log(INFO, f"grinds its block: next round for the coalition {best[0]} tick(s) "
                       f"after it")
        return best[1]

    def try_declare(self, parent: bytes, sid: str, own: StageResult) -> None:
        """A grinder declares at the oldest winning tick the rules let it claim."""
        node = self.node
        if not self.grinds_blocks:
            super().try_declare(parent, sid, own)
            return
        record = node.tree.records[parent]
        tick = self._first_win(TD, node.keys.public, parent, sid,
                               range(self._earliest(record, TD), node.now + 1))
        if tick is not None:
            node.declare(parent, sid, own, tick)

    def wrap(self, header: BlockHeader) -> None:
        if self.grinds_blocks:
            self.publish_block(self._ground_block(header))
        else:
            super().wrap(header)


class PoisonedGrinder(Attacker):
    """Poisoned training (like ``poisoned``), plus every grinding the rules allow: its
    declarations take the oldest winning tick they may, it publishes a header only at a
    tick whose draw names nobody but poisoned employees (trying fresh keys as authors and
    declarers where strangers may speak), and as Roy it grinds its block's ticks and
    transactions so that the next round has such a draw early."""

    role = Role.POISONED_GRINDER

    colluding = POISONED_TRAINING
    grinds_blocks = True

    def _wanted(self, draw: list[bytes]) -> bool:
        return all(pk in self.coalition for pk in draw)

    def try_header(self, parent: bytes, stage: int, sid: str, own: StageResult) -> None:
        node = self.node
        last = self._good_header.get(parent)
        if last is not None and node.now - last < node.scenario.round_timeout_ticks:
            return  # a header the coalition can wrap is out: wait for its block
        record = node.tree.records[parent]
        mine = node.rounds[parent].mine
        assert mine is not None  # try_header is asked once it has declared
        tick = self._search_own_header(record, sid, mine.tick)
        if tick is not None:
            self._publish_wanted(record, stage, sid, own, node.keys, tick, [mine])
            return
        if not node.rules.members:
            found = self._search_fresh_header(record, sid)
            if found is not None:
                key, tick, declared = found
                self._publish_wanted(record, stage, sid, own, key, tick,
                                     [self._declaration_of(key, parent, stage, sid, own,
                                                           declared)])


class Grinder(Attacker):
    """Trains honestly, and grinds for rewards with employee keys only: among its own
    winning ticks it publishes a header (one per tick where the rules allow) whose draw
    makes a grinder Roy, and as Roy it grinds its block so that a grinder wins the next
    round's header lottery early with such a draw."""

    role = Role.GRINDER

    grinds_blocks = True

    def _wanted(self, draw: list[bytes]) -> bool:
        return draw[-1] in self.coalition

    def try_header(self, parent: bytes, stage: int, sid: str, own: StageResult) -> None:
        node = self.node
        record = node.tree.records[parent]
        mine = node.rounds[parent].mine
        assert mine is not None  # try_header is asked once it has declared
        if len(node.rounds[parent].declarations) >= node.scenario.employer_confidence:
            tick = self._search_own_header(record, sid, mine.tick)
            if tick is not None:
                node.rounds[parent].header_tick = node.now
                self._publish_wanted(record, stage, sid, own, node.keys, tick, [mine])
                return
        super().try_header(parent, stage, sid, own)


class Sybil(Attacker):
    """Trains honestly, and authors through fresh keys: it tries keys until one wins the
    header lottery with a draw that makes itself Roy, gives that key a declaration (and
    more fresh declarations if the header needs them), and publishes the header as early
    as the rules let it claim. The trainer's share goes to its fresh key, Roy's to it."""

    role = Role.SYBIL

    def _wanted(self, draw: list[bytes]) -> bool:
        return draw[-1] == self.node.keys.public

    def duties(self) -> None:
        node = self.node
        super().duties()
        tip = node.tree.tip
        last = self._good_header.get(tip.hash)
        if last is not None and node.now - last < node.scenario.round_timeout_ticks:
            return
        stage = tip.height
        sid = stage_id(node.model_id, stage)
        own = self.own_stage(stage)
        found = self._search_fresh_header(tip, sid)
        if found is not None:
            key, tick, declared = found
            self._publish_wanted(tip, stage, sid, own, key, tick,
                                 [self._declaration_of(key, tip.hash, stage, sid, own,
                                                       declared)])


class Flooder(Attacker):
    """Trains honestly, and floods each round with declarations by fresh keys that win
    their lottery and commit to the honest secret, as many as its tries allow."""

    role = Role.FLOODER

    def duties(self) -> None:
        node = self.node
        super().duties()
        tip = node.tree.tip
        stage = tip.height
        sid = stage_id(node.model_id, stage)
        own = self.own_stage(stage)
        flood = self._fresh_declarations(tip, stage, sid, own, node.now,
                                         node.scenario.grind_tries_per_tick)
        for td in flood:
            node.emit(td.to_bytes())
        node.attack["flooded"] += len(flood)
        node.sent["flooded " + TD] += len(flood)


class Splitter(Behaviour):
    """As Roy, wraps two different blocks for one header and sends one to each half of
    the network (a direct message to each party), to split the honest employees."""

    role = Role.SPLITTER

    def publish_block(self, block: WrappedBlock) -> None:
        node = self.node
        header = block.header
        if block.transactions:
            twin = node.build_block(header, len(block.transactions) - 1, block.tick)
        elif block.tick > header.tick:
            twin = node.build_block(header, 0, block.tick - 1)
        else:
            super().publish_block(block)
            return
        n = node.scenario.employees_num
        data, other = block.to_bytes(), twin.to_bytes()
        for party in [*range(n), -1]:  # -1: the employer hears the first block
            if party != node.index:
                node.emit_to(party, data if party < n // 2 else other)
        node.sent["split " + block.kind] += 1
        node.attack["splits"] += 1
        node.log(INFO, f"splits: block {short(block.hash)} to employees 0..{n // 2 - 1}, "
                       f"{short(twin.hash)} to the rest, for header {short(header.hash)}")
        parent = node.tree.records[block.parent]
        node.append(block, parent.ledger.apply(block.transactions, block.payouts))


class Backdater(Lazy):
    """Does not train. It withholds its signature from others' headers (so that their
    rounds stall), and once a header reveals a round's secret it declares with a copy of
    that secret and a copied model hash, backdated to the oldest winning tick the rules
    allow, and authors a header of its own with the copied secret: a trainer's share
    without training."""

    role = Role.BACKDATER

    def __init__(self) -> None:
        # parent -> (revealed stage secret, a declarer's model hash, the revealed
        # personal secrets by declarer)
        self.revealed: dict[bytes, tuple[bytes, bytes, dict[bytes, bytes]]] = {}

    def saw_header(self, bh: BlockHeader) -> None:
        if bh.author != self.node.keys.public and bh.parent not in self.revealed:
            personal = dict(zip((td.author for td in bh.declarations),
                                bh.personal_secrets or (), strict=False))
            self.revealed[bh.parent] = (bh.secret, bh.declarations[0].model_hash, personal)

    def sign(self, bh: BlockHeader) -> None:
        if bh.author == self.node.keys.public:
            super().sign(bh)

    def wrap(self, header: BlockHeader) -> None:
        if header.author == self.node.keys.public:
            super().wrap(header)

    def own_stage(self, stage: int) -> StageResult:
        tip = self.node.tree.tip
        if tip.height == stage and tip.hash in self.revealed:
            secret, model_hash, _ = self.revealed[tip.hash]
            return StageResult(stage, (), secret, model_hash)
        return super().own_stage(stage)

    def personal_secret(self, stage: int, author: bytes) -> bytes:
        """What it can reveal for a declarer: a copy where a header revealed one, the
        stage's secret for itself (all it has)."""
        known = self.revealed.get(self.node.tree.tip.hash)
        if known is None:
            return sha256(b"unknown" + author)
        return known[2].get(author, known[0])

    def commit_secret(self, stage: int, own: StageResult) -> bytes:
        return own.secret  # the copied stage secret: its own personal one is unknown

    def try_declare(self, parent: bytes, sid: str, own: StageResult) -> None:
        node = self.node
        if parent not in self.revealed:
            return
        record = node.tree.records[parent]
        earliest = parent_tick = record.tick
        if node.rules.tick_window:
            earliest = max(parent_tick, node.now - node.scenario.tick_window)
        for tick in range(earliest, node.now + 1):
            kernel = kernel_of(node.scenario, TD, node.keys.public, parent, sid, tick)
            if lottery.wins(kernel, node.scenario.td_coinstake):
                node.attack["backdated"] += node.now - tick
                node.declare(parent, sid, own, tick)
                return

    def try_header(self, parent: bytes, stage: int, sid: str, own: StageResult) -> None:
        node = self.node
        mine = node.rounds[parent].mine
        assert mine is not None  # try_header is asked once it has declared
        if node.header_tick(parent) is not None:
            return
        if len(node.rounds[parent].declarations) < node.scenario.employer_confidence:
            return
        record = node.tree.records[parent]
        earliest = max(mine.tick, record.tick)
        if node.rules.tick_window:
            earliest = max(earliest, node.now - node.scenario.tick_window)
        for tick in range(earliest, node.now + 1):
            kernel = kernel_of(node.scenario, BH, node.keys.public, parent, sid, tick)
            older = [td for td in node.rounds[parent].declarations.values() if td.tick <= tick]
            if len(older) >= node.scenario.employer_confidence and lottery.wins(
                    kernel, node.scenario.bh_coinstake):
                node.rounds[parent].header_tick = node.now
                node.attack["found"] += 1
                cap = node.scenario.max_header_declarations if node.rules.header_cap \
                    else len(older)
                older.sort(key=lambda td: (td.author != node.keys.public, td.tick))
                self.publish_header(node.make_header(parent, stage, sid, own, tick,
                                                     declarations=older[:cap]))
                return


class JunkFiller(Behaviour):
    """Honest otherwise, it sends each tick signed messages that build on blocks that do
    not exist (declarations, and blocks to be kept as orphans), so that receivers fill
    the state they keep about missing blocks, and asks every employee for such blocks."""

    role = Role.JUNK_FILLER

    JUNK_PER_TICK = 8

    def duties(self) -> None:
        node = self.node
        super().duties()
        tip = node.tree.tip
        sid = stage_id(node.model_id, tip.height)
        own = self.own_stage(tip.height)
        rng = random.Random(f"PoT-junk-{node.scenario.seed}-{node.index}-{node.now}")
        for _ in range(self.JUNK_PER_TICK):
            invented = rng.randbytes(32)
            td = TrainingDeclaration.create(
                node.keys, model_id=node.model_id, stage_id=sid, parent=invented,
                tick=node.now, model_hash=own.model_hash, secret=own.secret,
                coinstake=node.scenario.td_coinstake)
            header = BlockHeader.create(
                node.keys, model_id=node.model_id, stage_id=sid, height=tip.height + 2,
                parent=rng.randbytes(32), tick=node.now, secret=own.secret,
                declarations=[td], coinstake=node.scenario.bh_coinstake)
            block = WrappedBlock.create(node.keys, header=header, signatures=[],
                                        transactions=[], payouts=[], tick=node.now)
            node.emit(td.to_bytes())
            node.emit(block.to_bytes())
        for party in range(node.scenario.employees_num):
            if party != node.index:
                request = BlockRequest.create(node.keys, want=rng.randbytes(32),
                                              locator=node.tree.locator(MAX_LOCATOR),
                                              tick=node.now)
                node.emit_to(party, request.to_bytes())
        node.sent["junk"] += 2 * self.JUNK_PER_TICK + node.scenario.employees_num - 1
        node.attack["junk"] += 2 * self.JUNK_PER_TICK


class Selfish(Attacker):
    """As Roy it withholds its block and releases it only when a rival block for the same
    parent arrives (or when the rules would soon call it late), hoping to win the race;
    where the tie rule is the lowest block hash, it grinds its block's transactions for
    the lowest hash it can find."""

    role = Role.SELFISH

    def __init__(self) -> None:
        super().__init__()
        self.withheld: dict[bytes, WrappedBlock] = {}  # parent -> its withheld block

    def _wanted(self, draw: list[bytes]) -> bool:
        return draw[-1] == self.node.keys.public

    def publish_block(self, block: WrappedBlock) -> None:
        node = self.node
        if not node.rules.tie_break:  # the lowest hash wins a stalled tie: grind it low
            for count in range(len(block.transactions) - 1, -1, -1):
                if not self._spend(SIGNED_BLOCK_TRIES):
                    break
                other = node.build_block(block.header, count, block.tick)
                if other.hash < block.hash:
                    block = other
        self.withheld[block.parent] = block
        node.attack["withheld"] += 1
        node.log(INFO, f"withholds block {short(block.hash)} at height {block.height}")

    def _release(self, parent: bytes, why: str) -> None:
        block = self.withheld.pop(parent)
        self.node.log(INFO, f"releases block {short(block.hash)} ({why})")
        super().publish_block(block)

    def appended(self, wb: WrappedBlock) -> None:
        if wb.parent in self.withheld and wb.author != self.node.keys.public:
            self.node.attack["raced"] += 1
            self._release(wb.parent, f"rival {short(wb.hash)} arrived")

    def duties(self) -> None:
        for parent, block in list(self.withheld.items()):
            if self.node.now - block.header.tick >= self.node.scenario.tick_window - 1:
                self._release(parent, "no rival came in time")
        super().duties()


# The attacks by role (``adversaries.behaviour_for`` adds them to the other roles).
ATTACKS: dict[Role, type[Behaviour]] = {
    Role.SYBIL: Sybil, Role.GRINDER: Grinder, Role.POISONED_GRINDER: PoisonedGrinder,
    Role.FLOODER: Flooder, Role.SPLITTER: Splitter, Role.BACKDATER: Backdater,
    Role.JUNK_FILLER: JunkFiller, Role.SELFISH: Selfish,
}
