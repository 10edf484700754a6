"""An employee's protocol logic as a pure state machine.

``Employee.step(tick, deliveries)`` takes the tick number and the raw bytes delivered
for that tick, updates the employee's state and returns ``Ready``: the messages to
broadcast and the log events to write. It owns no pipe, clock or logging handler; the
process wrapper (``employee_process``) does the I/O, in the spirit of the Step/Ready
split of etcd's raft library. Training is a call to the injected ``Trainer``, which is
deterministic, so the state machine stays a function of its inputs.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from simulation.config import Role, Scenario
from simulation.node.behaviour import Behaviour
from simulation.protocol import lottery
from simulation.protocol.chain import BlockTree, TipChange
from simulation.protocol.encoding import DecodeError, KeyPair, derive_keypair, sha256
from simulation.protocol.events import Event, EventKind
from simulation.protocol.ledger import (
    Genesis,
    payouts,
    select_transactions,
    transaction_static_problem,
)
from simulation.protocol.messages import (
    BH,
    MAX_LOCATOR,
    RQ,
    SS,
    TD,
    TX,
    WB,
    AnyMessage,
    BlockHeader,
    BlockRequest,
    StakeholderSignature,
    TrainingDeclaration,
    Transaction,
    WrappedBlock,
    parse_message,
)
from simulation.protocol.names import EMPLOYER_NAME, EMPLOYER_PARTY, employee_name, party_name
from simulation.protocol.reasons import UNPARSED, Reason
from simulation.protocol.records import ChainEntry, EmployeeReport, Status, TreeEntry
from simulation.protocol.rules import rules_of
from simulation.protocol.stages import StageResult, Trainer, secret_rule, stage_id
from simulation.protocol.validation import (
    Context,
    Rejected,
    check_block,
    check_declaration,
    check_header,
    check_stakeholder_signature,
    header_key,
    round_kernel,
)

DEBUG, INFO, WARNING = 10, 20, 30  # logging levels, without importing logging here
MAX_CATCH_UP_BLOCKS = 32  # blocks in one answer to a block request
MAX_MISSING = 64  # unknown blocks remembered at once (a forger can name any number)
# Rule bounded-state: what one peer can make this node remember, and how often it may
# ask; the oldest entry of a peer over its bound is evicted.
MAX_MISSING_PER_PEER = 8
MAX_ORPHANS_PER_PEER = 16
MAX_REQUESTS_PER_PEER = 8  # block requests answered per peer per ROUND_TIMEOUT_TICKS
MAX_INVALID_REMEMBERED = 4096  # rejected blocks whose children are rejected unasked
# What a party forwards in a peer graph: the round's messages and blocks. Transactions
# reach every employee from the users; block requests and their answers are for one
# party.
RELAYED_KINDS = frozenset({TD, BH, SS, WB})


@dataclass(frozen=True)
class LogEvent:
    level: int
    text: str


@dataclass(frozen=True)
class Ready:
    """What one step produced: bytes to broadcast, bytes for one party each (catch-up),
    events to log, and the event log's records (EVENT_LOG_MB; none when it is off)."""

    tick: int
    outgoing: tuple[bytes, ...]
    events: tuple[LogEvent, ...]
    direct: tuple[tuple[int, bytes], ...] = ()
    happenings: tuple[Event, ...] = ()


@dataclass
class Round:
    """This employee's view of the round on one parent block (``Employee.rounds``)."""

    # The first valid declaration of each author, by author, in arrival order (its own
    # included): what a header of this round can carry.
    declarations: dict[bytes, TrainingDeclaration] = field(default_factory=dict)
    mine: TrainingDeclaration | None = None  # its own declaration in this round
    header_tick: int | None = None  # when it last published a header (round timeout)


@dataclass
class HeldHeader:
    """A valid header this employee holds (``Employee.headers``), with its stakeholder
    duties: who must sign it, the signatures gathered (for Roy), whether it signed."""

    header: BlockHeader
    stakeholders: list[bytes] | None = None  # None: too few employees hold stake
    signatures: dict[bytes, StakeholderSignature] = field(default_factory=dict)
    signed: bool = False


class Names:
    """Short names for public keys in log lines: E3 for employees, U2 for users."""

    def __init__(self, genesis: Genesis, employer: bytes | None = None):
        self._names = {pk: employee_name(i) for i, pk in enumerate(genesis.employees)}
        self._names.update({pk: f"U{i}" for i, pk in enumerate(genesis.users)})
        self.employee_index = {pk: i for i, pk in enumerate(genesis.employees)}
        # Parties a block request may come from: the employees and the employer (whose
        # key every employee knows: it published the task).
        self.party_index = dict(self.employee_index)
        if employer is not None:
            self._names[employer] = EMPLOYER_NAME
            self.party_index[employer] = EMPLOYER_PARTY

    def __call__(self, pk: bytes) -> str:
        return self._names.get(pk, "?" + pk.hex()[:8])


def short(h: bytes) -> str:
    return h.hex()[:10]


class Employee:
    """One employee (node) of the PoT network, as a pure state machine.

    Theory of operation. The outside world calls ``step(tick, deliveries)`` once per tick,
    with the frames that arrived since the last call, and gets back a ``Ready``: the
    frames to broadcast, the frames for one party only (catch-up answers) and the log
    events. Nothing else goes in or out: no pipes, no clock, no logging handler, so the
    lockstep, process and Ray backends drive the same object the same way. Within a step:

    1. Every delivered frame is parsed and handed to the handler of its kind (``_on_*``).
       A handler either accepts the message (it changes the state below and may answer)
       or raises ``Rejected`` with a reason, which is counted in ``rejected`` and logged;
       one bad frame never stops the step.
    2. ``_catch_up`` asks peers for blocks that others built on but this node lacks.
    3. ``honest_duties`` does this tick's own work in the round on the current tip (the
       round's parent): once its hardware has trained the stage (``stage_ticks``), try
       the TD lottery and declare; once enough declarations are held, try the BH lottery and
       publish a header; as Roy of a header whose other stakeholders have all signed,
       wrap the block (``_try_wrap``). A drawn stakeholder signs a header as soon as it
       accepts it (``honest_sign``, in step 1).

    A round is identified by its parent block's hash; the tip moves when a longer valid
    chain arrives (``_on_tip_change``), which starts a new round. Training is done on
    demand: ``honest_own_stage(stage)`` trains up to that stage once and keeps the result.

    Roles. Where a role may act otherwise (train, declare, publish a header, sign, wrap,
    publish a block, add to the step's output) the employee asks its ``behaviour``
    (``node.behaviour``), whose defaults call the ``honest_*`` methods here. Adversaries
    (``adversaries``, ``attacks``) and the employer's light client (``employer``) are
    small behaviours; the state below stays the employee's.

    Where the state lives (all of it in this object; a behaviour keeps only what its
    role adds, such as an attacker's tries this tick):

    - the chain: ``tree`` (every valid block known, and the tip), ``arrived``;
    - training: ``trained`` (one StageResult per stage, in order), ``_personal``
      (personal secrets by stage and author), ``stage_started``;
    - the rounds: ``rounds`` (one ``Round`` per parent block: the declarations held,
      its own, when it last published a header), ``headers`` (one ``HeldHeader`` per
      valid header: its stakeholders, the signatures gathered, whether it signed),
      ``roy_of`` (the headers it would wrap), ``header_for_win`` and
      ``block_for_header`` (the first header of a lottery win and the first block of a
      header, to tell equivocation), ``wrapped_heights``;
    - transactions: ``mempool``, ``seen_transactions``, ``rejected_transactions``;
    - catch-up: ``missing``, ``requested``, ``answered``, ``request_ticks``,
      ``invalid_blocks``;
    - counters for the report: ``sent``, ``sent_bytes``, ``accepted``, ``rejected``,
      ``attack``, ``equivocations``, ``fork_evidence``, ``served_blocks``;
    - this step's output, emptied at the start of each step: ``_out``, ``_direct``,
      ``_events`` and, with EVENT_LOG_MB, ``_happenings`` (the event log's records,
      ``protocol.events``: they only describe what the step did, and change nothing).
    """

    def __init__(
        self,
        index: int,
        scenario: Scenario,
        genesis: Genesis,
        trainer: Trainer,
        keys: KeyPair,
        behaviour: Behaviour | None = None,
    ):
        self.index = index
        self.name = party_name(index)
        # The role's conduct (``node.behaviour``): the honest one unless a role is given.
        self.behaviour = behaviour or Behaviour()
        self.behaviour.attach(self)
        self.scenario = scenario
        self.genesis = genesis
        self.trainer = trainer
        self.keys = keys
        self.model_id = genesis.model_id
        self.names = Names(genesis, derive_keypair(scenario.seed, "employer", 0).public)
        self.tree = BlockTree(genesis, self.behaviour.block_weight())
        self.rules = rules_of(scenario)
        self.ctx = Context(scenario, self.model_id, genesis, self.tree,
                           self.behaviour.own_stage if self.behaviour.trains else None,
                           personal_secret=self.behaviour.personal_secret)
        self.now = -1
        self.tip_since = 0  # tick at which the current tip was adopted
        # HARDWARE and STAGE_TICKS: ticks this employee needs per stage, and the tick at
        # which its chain first reached each stage (when it began training it).
        self.speed_factor = (scenario.speed_factors[index]
                             if 0 <= index < scenario.employees_num else 1.0)
        self.stage_ticks = math.ceil(scenario.stage_ticks * self.speed_factor)
        self.stage_started: dict[int, int] = {}
        self._secret_rule = secret_rule(scenario)
        self.trained: list[StageResult] = []
        self._personal: dict[tuple[int, bytes], bytes] = {}  # (stage, author) -> secret
        # Round state, keyed by parent block hash.
        self.rounds: dict[bytes, Round] = defaultdict(Round)
        self.headers: dict[bytes, HeldHeader] = {}  # by header hash
        # The first header of each lottery win (header_key): a second is equivocation.
        self.header_for_win: dict[tuple[bytes, bytes, int], bytes] = {}
        self.roy_of: set[bytes] = set()  # headers this employee would wrap
        # Round state kept by height and header: the heights it wrapped a block at, the
        # first block seen for each header (a second is equivocation).
        self.wrapped_heights: set[int] = set()
        self.block_for_header: dict[bytes, bytes] = {}
        self.equivocations = 0
        self.mempool: dict[bytes, Transaction] = {}
        self.seen_transactions: set[bytes] = set()
        self.rejected_transactions: dict[bytes, str] = {}
        # Catch-up state: blocks others built on that this node lacks (-> tick first
        # missed, author to ask), its requests and its answers by tick.
        self.missing: dict[bytes, tuple[int, bytes]] = {}
        self.requested: dict[bytes, int] = {}
        self.answered: dict[tuple[bytes, bytes], int] = {}
        self.request_ticks: dict[bytes, list[int]] = {}  # requester -> ticks answered
        # Blocks rejected on a rule, not asked for (a dict as an ordered set: the rule
        # bounded-state forgets the oldest).
        self.invalid_blocks: dict[bytes, None] = {}
        self.fork_evidence = 0  # second blocks for one header, kept as fork candidates
        self.served_blocks = 0
        # Counters for the report.
        self.sent: Counter[str] = Counter()
        self.sent_bytes: Counter[str] = Counter()  # encoded bytes broadcast, by kind
        self.arrived: dict[bytes, int] = {}  # block hash -> tick it entered this tree
        self.accepted: Counter[str] = Counter()
        self.rejected: dict[str, Counter[str]] = defaultdict(Counter)
        self.attack: Counter[str] = Counter()  # an adversary's own counts (grinding ...)
        # Relay after validation (a TOPOLOGY other than full): its peers, the messages
        # it holds (by hash: a later copy is a duplicate, dropped unread), and accepted
        # messages waiting for its own training of their stage before it forwards them
        # (ready tick, order, bytes). The full mesh relays nothing and uses none of it.
        graph = scenario.peer_graph
        self.relays = graph is not None
        self.peers: tuple[int, ...] = ()
        if graph is not None:
            if index == EMPLOYER_PARTY:
                self.peers = tuple(sorted(graph.employer_peers))
            elif 0 <= index < scenario.employees_num:
                self.peers = graph.peers_of(index) + (
                    (EMPLOYER_PARTY,) if index in graph.employer_peers else ())
        self.held_messages: set[bytes] = set()
        self.duplicates = 0
        # (ready tick, order, bytes, kind, short hash): the last two for the event log.
        self._waiting_relays: list[tuple[int, int, bytes, str, str]] = []
        self._catch_up_asks: Counter[bytes] = Counter()  # block -> requests sent for it
        self._out: list[bytes] = []
        self._direct: list[tuple[int, bytes]] = []
        self._events: list[LogEvent] = []
        self.notes_events = scenario.event_log_mb > 0
        self._happenings: list[Event] = []

    # --- The step ---------------------------------------------------------------------

    @property
    def role(self) -> Role:
        return self.behaviour.role

    def step(self, tick: int, deliveries: Sequence[bytes]) -> Ready:
        self.behaviour.begin_step(tick)
        if tick <= self.now:
            raise ValueError(f"tick {tick} is not after {self.now}")
        self.now = self.ctx.now = tick
        self._out, self._direct, self._events = [], [], []
        if self.notes_events:
            self._happenings = []
        for data in deliveries:
            self.receive(data)
        if self._waiting_relays:
            self._forward_trained()
        self._catch_up()
        self.behaviour.duties()
        return self.behaviour.end_step(
            Ready(tick, tuple(self._out), tuple(self._events), tuple(self._direct),
                  tuple(self._happenings)))

    def receive(self, data: bytes) -> None:
        try:
            message = parse_message(data)
        except DecodeError as exc:
            self._reject(UNPARSED, str(exc), None)
            return
        if self.relays and message.hash in self.held_messages:
            self.duplicates += 1  # a copy over another path: nothing new to check
            if self.notes_events:
                self.note(EventKind.DUPLICATE, message, author=self.names(message.author))
            return
        handlers: dict[str, Callable[[Any], None]] = {
            TX: self._on_transaction,
            TD: self._on_declaration,
            BH: self._on_header,
            SS: self._on_stakeholder_signature,
            WB: self._on_block,
            RQ: self._on_block_request,
        }
        handler = handlers[message.kind]
        try:
            handler(message)
        except Rejected as exc:
            self._reject(message.kind, exc.reason, message)
            if message.kind == TX:
                self.rejected_transactions.setdefault(message.hash, exc.reason)

    # --- Helpers ------------------------------------------------------------------------

    def log(self, level: int, text: str) -> None:
        self._events.append(LogEvent(level, f"{self.name} {text}"))

    def note(self, kind: EventKind, about: AnyMessage | None = None, **details: Any) -> None:
        """An event log record of this tick (call only when ``notes_events``): the kind,
        hash and, for headers and blocks, height of the message it is ``about``, unless
        ``details`` say otherwise."""
        if about is not None:
            details.setdefault("message", about.kind)
            details.setdefault("hash", short(about.hash))
            if isinstance(about, (BlockHeader, WrappedBlock)):
                details.setdefault("height", about.height)
        self._happenings.append(Event(self.now, self.name, kind, **details))

    def _reject(self, kind: str, reason: str, message: AnyMessage | None) -> None:
        self.rejected[kind][reason] += 1
        origin = f" from {self.names(message.author)}" if message is not None else ""
        self.log(INFO, f"rejected {kind}{origin}: {reason}")
        if self.notes_events:
            self.note(EventKind.REJECTED, message, message=kind, reason=str(reason),
                      author=self.names(message.author) if message is not None else "")

    def _accept(self, message: AnyMessage, detail: str = "") -> None:
        self.accepted[message.kind] += 1
        self.log(INFO, f"accepted {message.kind} {short(message.hash)} from "
                       f"{self.names(message.author)}{detail}")
        if self.notes_events:
            self.note(EventKind.ACCEPTED, message, author=self.names(message.author))
        if self.relays:
            self.held_messages.add(message.hash)
            if message.kind in RELAYED_KINDS:
                self.behaviour.relay(message)

    def _broadcast(self, message: AnyMessage, detail: str) -> None:
        if self.relays:
            self.held_messages.add(message.hash)
        self._out.append(self._counted(message))
        self.log(INFO, f"broadcast {message.kind} {short(message.hash)} {detail}")
        if self.notes_events:
            self.note(EventKind.SENT, message)

    def honest_relay(self, message: AnyMessage) -> None:
        """Relay after validation: forward an accepted message to the peers (the network
        skips the one it came from). Checking a declaration, header or block means
        training its stage, so a party that trains forwards one only once its own
        hardware has trained that stage (STAGE_TICKS, scaled by HARDWARE): it began the
        stage when its chain reached it or when a message first needed it."""
        ready = self.now
        stage = self._stage_checked(message)
        if stage is not None and self.behaviour.trains and self.stage_ticks > 0:
            ready = self.stage_started.setdefault(stage, self.now) + self.stage_ticks
        if ready <= self.now:
            self._out.append(message.to_bytes())
            if self.notes_events:
                self.note(EventKind.FORWARDED, message)
            return
        self._waiting_relays.append((ready, len(self._waiting_relays), message.to_bytes(),
                                     message.kind, short(message.hash)))
        self.log(DEBUG, f"forwards {message.kind} {short(message.hash)} at tick {ready}, "
                        f"once it has trained stage {stage}")

    def _stage_checked(self, message: AnyMessage) -> int | None:
        """The stage a message's check trains (None: its check trains nothing)."""
        if isinstance(message, (BlockHeader, WrappedBlock)):
            return message.height - 1
        if isinstance(message, TrainingDeclaration):
            parent = self.tree.get(message.parent)
            return parent.height if parent is not None else None
        return None

    def _forward_trained(self) -> None:
        due = sorted(w for w in self._waiting_relays if w[0] <= self.now)
        if due:
            self._waiting_relays = [w for w in self._waiting_relays if w[0] > self.now]
            self._out.extend(data for _, _, data, _, _ in due)
            if self.notes_events:
                for _, _, _, kind, hashed in due:
                    self.note(EventKind.FORWARDED, message=kind, hash=hashed)

    def _send_to(self, party: int, message: AnyMessage, detail: str) -> None:
        """To one party only (catch-up)."""
        self._direct.append((party, self._counted(message)))
        self.log(INFO, f"sent {message.kind} {short(message.hash)} {detail}")
        if self.notes_events:
            want = short(message.want) if isinstance(message, BlockRequest) else ""
            self.note(EventKind.SENT, message, to=party_name(party), want=want)

    def emit(self, data: bytes) -> None:
        """Broadcast frames made outside the honest duties (an adversary's), uncounted."""
        self._out.append(data)
        if self.notes_events:
            self._note_frame(data)

    def emit_to(self, party: int, data: bytes) -> None:
        self._direct.append((party, data))
        if self.notes_events:
            self._note_frame(data, party_name(party))

    def _note_frame(self, data: bytes, to: str = "") -> None:
        """An adversary's frame, by the hash its receivers' records show (a message's
        hash is that of its bytes)."""
        self.note(EventKind.SENT, message="frame", hash=short(sha256(data)), to=to,
                  size=len(data))

    def _counted(self, message: AnyMessage) -> bytes:
        data = message.to_bytes()
        self.sent[message.kind] += 1
        self.sent_bytes[message.kind] += len(data)
        return data

    def honest_own_stage(self, stage: int) -> StageResult:
        while len(self.trained) <= stage:
            s = len(self.trained)
            result = self.trainer.result(s)
            if self.scenario.verification != "exact":  # the trainers hash exactly
                result = replace(result, secret=self._secret_rule(
                    stage_id(self.model_id, s), result.losses))
            self.trained.append(result)
            for i, loss in enumerate(result.losses):
                self.log(DEBUG, f"stage {s} iteration {i} loss {loss:.9g}")
            self.log(DEBUG, f"trained stage {s}: ts {short(result.secret)} "
                            f"model {short(result.model_hash)}")
        return self.trained[stage]

    def honest_personal_secret(self, stage: int, author: bytes) -> bytes:
        """Rule personal-secrets: ``author``'s secret for ``stage``, from this employee's
        own losses (the same as the author's, if both trained honestly)."""
        key = (stage, author)
        if key not in self._personal:
            self._personal[key] = self._secret_rule(stage_id(self.model_id, stage),
                                                    self.behaviour.own_stage(stage).losses, author)
        return self._personal[key]

    def honest_commit_secret(self, stage: int, own: StageResult) -> bytes:
        """The secret this employee's declaration commits to."""
        if self.rules.personal_secrets:
            return self.behaviour.personal_secret(stage, self.keys.public)
        return own.secret

    def my_declaration(self, parent: bytes) -> TrainingDeclaration | None:
        """Its own declaration in the round on ``parent`` (None: none yet)."""
        known = self.rounds.get(parent)
        return known.mine if known is not None else None

    def header_tick(self, parent: bytes) -> int | None:
        """When it last published a header in the round on ``parent``."""
        known = self.rounds.get(parent)
        return known.header_tick if known is not None else None

    # --- Handlers -----------------------------------------------------------------------

    def _on_transaction(self, tx: Transaction) -> None:
        if tx.hash in self.seen_transactions:
            raise Rejected(Reason.DUPLICATE_TRANSACTION)
        self.seen_transactions.add(tx.hash)
        problem = transaction_static_problem(tx, self.ctx.chain_id())
        if problem is not None:
            raise Rejected(problem)
        if tx.nonce < self.tree.tip.ledger.next_nonce(tx.sender):
            raise Rejected(Reason.NONCE_ALREADY_USED)
        self.mempool[tx.hash] = tx
        self._accept(tx, f" ({tx.amount} coins to {self.names(tx.receiver)})")

    def _on_declaration(self, td: TrainingDeclaration) -> None:
        known = self.rounds.get(td.parent)
        previous = known.declarations.get(td.author) if known is not None else None
        if previous is not None and previous.hash == td.hash:
            raise Rejected(Reason.DUPLICATE_DECLARATION)
        self._note_if_missing(td)
        check_declaration(self.ctx, td)  # a forged second one is rejected for its fault
        if previous is not None:
            raise Rejected(Reason.SECOND_DECLARATION_FOR_THE_ROUND)
        self._record_declaration(td)
        self._accept(td, f" for {td.stage_id}")

    def _record_declaration(self, td: TrainingDeclaration) -> None:
        self.rounds[td.parent].declarations[td.author] = td

    def _on_header(self, bh: BlockHeader) -> None:
        if bh.hash in self.headers:
            raise Rejected(Reason.DUPLICATE_HEADER)
        self._note_if_missing(bh)
        check_header(self.ctx, bh)
        first = self.header_for_win.setdefault(header_key(self.scenario, bh), bh.hash)
        if first != bh.hash:
            self.equivocations += 1
            raise Rejected(Reason.SECOND_HEADER_FOR_WIN)
        self._accept(bh, f" at height {bh.height}")
        self._take_header(bh)

    def _take_header(self, bh: BlockHeader) -> None:
        """Stakeholder duties for a valid header, the employee's own included."""
        self.behaviour.saw_header(bh)
        held = self.headers[bh.hash] = HeldHeader(bh)
        stakeholders = self.ctx.stakeholders(bh)
        if stakeholders is None:
            self.log(INFO, f"header {short(bh.hash)} has no stakeholders "
                           f"(too few employees hold stake)")
            return
        held.stakeholders = stakeholders
        me = self.keys.public
        if me not in stakeholders:
            return
        if me == stakeholders[-1]:
            self.roy_of.add(bh.hash)
            self.log(DEBUG, f"is Roy of header {short(bh.hash)}")
            return
        if held.signed:
            return
        if bh.height != self.tree.tip.height + 1:
            self.log(DEBUG, f"does not sign stale header {short(bh.hash)}")
            return
        held.signed = True
        self.behaviour.sign(bh)

    def honest_sign(self, bh: BlockHeader) -> None:
        """A normal stakeholder's endorsement."""
        ss = StakeholderSignature.create(self.keys, bh.hash)
        self.headers[bh.hash].signatures[self.keys.public] = ss
        self._broadcast(ss, f"for header {short(bh.hash)}")

    def _on_stakeholder_signature(self, ss: StakeholderSignature) -> None:
        held = self.headers.get(ss.header_hash)
        if held is None or held.stakeholders is None:
            raise Rejected(Reason.UNKNOWN_HEADER)
        stakeholders = held.stakeholders
        if ss.author in held.signatures:
            raise Rejected(Reason.DUPLICATE_STAKEHOLDER_SIGNATURE)
        check_stakeholder_signature(ss, stakeholders)
        held.signatures[ss.author] = ss
        self._accept(ss, f" for header {short(ss.header_hash)}")

    def _on_block(self, wb: WrappedBlock) -> None:
        if wb.hash in self.tree or wb.hash in self.tree.orphans:
            raise Rejected(Reason.DUPLICATE_BLOCK)
        if wb.parent in self.invalid_blocks:
            self._remember_invalid(wb.hash)
            raise Rejected(Reason.PARENT_BLOCK_IS_INVALID)
        if wb.parent not in self.tree:
            if self.rules.members and wb.author not in self.ctx.members:
                raise Rejected(Reason.NOT_AN_EMPLOYEE)
            if not wb.signature_valid():
                raise Rejected(Reason.BAD_SIGNATURE)
            self._note_missing(wb.parent, wb.author)
            limit = MAX_ORPHANS_PER_PEER if self.rules.bounded_state else None
            if not self.tree.add_orphan(wb, per_author=limit):
                raise Rejected(Reason.ORPHAN_POOL_FULL)
            self.log(INFO, f"holds orphan block {short(wb.hash)} until parent "
                           f"{short(wb.parent)} arrives")
            if self.notes_events:
                self.note(EventKind.ORPHAN, wb, message="", parent=short(wb.parent),
                          trainer=self.names(wb.header.author), roy=self.names(wb.author))
            return
        try:
            ledger = check_block(self.ctx, wb)
        except Rejected:
            self._discard_descendants(wb.hash)
            raise
        first = self.block_for_header.get(wb.header.hash)
        if first is not None and first != wb.hash:
            self.equivocations += 1
            if not self.rules.fork_evidence:
                raise Rejected(Reason.SECOND_BLOCK_FOR_HEADER)
            # Rule fork-evidence: both are valid blocks; keeping both as fork candidates
            # lets the longest chain decide, where rejecting the second split for good
            # those who had seen the other first.
            self.fork_evidence += 1
            self.log(INFO, f"evidence against Roy {self.names(wb.author)}: block "
                           f"{short(wb.hash)} is a second block for header "
                           f"{short(wb.header.hash)}; kept as a fork candidate")
        self._accept(wb, f" at height {wb.height}")
        self.append(wb, ledger)

    # --- Catch-up ------------------------------------------------------------------------

    def _note_if_missing(self, message: TrainingDeclaration | BlockHeader) -> None:
        """A signed round message on a block this node lacks: that block exists."""
        if message.parent in self.tree or (self.rules.members
                                           and message.author not in self.ctx.members):
            return
        if message.signature_valid():
            self._note_missing(message.parent, message.author)

    def _remember_invalid(self, block_hash: bytes) -> None:
        self.invalid_blocks[block_hash] = None
        if self.rules.bounded_state and len(self.invalid_blocks) > MAX_INVALID_REMEMBERED:
            del self.invalid_blocks[next(iter(self.invalid_blocks))]

    def _discard_descendants(self, block_hash: bytes) -> None:
        """An invalid block makes every block built on it invalid: drop the orphans that
        wait for it, and never ask for any of them."""
        self._remember_invalid(block_hash)
        for orphan in self.tree.take_orphans_of(block_hash):
            self._reject(WB, Reason.PARENT_BLOCK_IS_INVALID, orphan)
            self._discard_descendants(orphan.hash)

    def _note_missing(self, block_hash: bytes, peer: bytes) -> None:
        while block_hash in self.tree.orphans:  # held already: its ancestor is missing
            block_hash = self.tree.orphans[block_hash].parent
        if block_hash in self.tree or block_hash in self.invalid_blocks:
            return
        known = self.missing.get(block_hash)
        if known is not None:
            self.missing[block_hash] = (known[0], peer)  # ask the latest author
        elif self.rules.bounded_state:
            # Each peer fills only its own share: a peer that names invented blocks
            # evicts its own oldest claim, never another peer's.
            claims = [h for h, (_, p) in self.missing.items() if p == peer]
            if len(claims) >= MAX_MISSING_PER_PEER:
                del self.missing[claims[0]]
                self.requested.pop(claims[0], None)
            self.missing[block_hash] = (self.now, peer)
        elif len(self.missing) < MAX_MISSING:
            self.missing[block_hash] = (self.now, peer)

    def _catch_up(self) -> None:
        """Ask for blocks others build on that are still unknown ROUND_TIMEOUT_TICKS
        after they were first noted (sooner asks for blocks that are merely slower than
        their children, which on a congested network only adds traffic): one request to
        the last author that built on it, repeated (to the then latest author) every
        ROUND_TIMEOUT_TICKS while it stays unknown."""
        timeout = self.scenario.round_timeout_ticks
        if self.rules.bounded_state:  # records of answered requests expire
            self.answered = {k: t for k, t in self.answered.items() if self.now - t < timeout}
            self.request_ticks = {p: kept for p, ticks in self.request_ticks.items()
                                  if (kept := [t for t in ticks if self.now - t < timeout])}
        for block_hash, (since, peer) in list(self.missing.items()):
            if block_hash in self.tree.orphans:  # arrived, but its parent has not
                del self.missing[block_hash]
                self._note_missing(block_hash, peer)
                continue
            if block_hash in self.tree or block_hash in self.invalid_blocks:
                del self.missing[block_hash]
                if self.rules.bounded_state:
                    self.requested.pop(block_hash, None)
                continue
            if self.now - since < self.scenario.round_timeout_ticks:
                continue
            last = self.requested.get(block_hash)
            if last is not None and self.now - last < self.scenario.round_timeout_ticks:
                continue
            party = self.names.party_index.get(peer)
            if self.relays:  # ask its peers in turn; the author may be far away
                party = self._peer_to_ask(block_hash)
            elif party is None or peer == self.keys.public:
                continue
            if party is None:
                continue
            self.requested[block_hash] = self.now
            request = BlockRequest.create(self.keys, want=block_hash,
                                          locator=self.tree.locator(MAX_LOCATOR),
                                          tick=self.now)
            self._send_to(party, request, f"to {self.names(peer)} for block "
                                          f"{short(block_hash)} (tip height "
                                          f"{self.tree.tip.height})")

    def _peer_to_ask(self, block_hash: bytes) -> int | None:
        """The peer a catch-up request for ``block_hash`` goes to: each in turn, from
        one the block's hash picks, so that a peer without it is not asked again."""
        if not self.peers:
            return None
        asked = self._catch_up_asks[block_hash]
        self._catch_up_asks[block_hash] += 1
        return self.peers[(block_hash[0] + asked) % len(self.peers)]

    def _on_block_request(self, rq: BlockRequest) -> None:
        party = self.names.party_index.get(rq.author)
        if party is None:
            raise Rejected(Reason.UNKNOWN_REQUESTER)
        if rq.author == self.keys.public:
            raise Rejected(Reason.OWN_REQUEST)
        if rq.tick > self.now:
            raise Rejected(Reason.TICK_IN_THE_FUTURE)
        if not rq.signature_valid():
            raise Rejected(Reason.BAD_SIGNATURE)
        last = self.answered.get((rq.author, rq.want))
        if last is not None and self.now - last < self.scenario.round_timeout_ticks:
            raise Rejected(Reason.REPEATED_REQUEST)
        if self.rules.bounded_state:
            answered = self.request_ticks.setdefault(rq.author, [])
            if len(answered) >= MAX_REQUESTS_PER_PEER:
                raise Rejected(Reason.REQUEST_RATE_LIMIT_EXCEEDED)
            answered.append(self.now)
        self.answered[(rq.author, rq.want)] = self.now
        record = self.tree.get(rq.want)
        if record is None or record.block is None:
            self._accept(rq, f" for block {short(rq.want)}: not held here")
            return
        path = self.tree.path_from(set(rq.locator), rq.want, MAX_CATCH_UP_BLOCKS)
        self._accept(rq, f" for block {short(rq.want)}: sends {len(path)} block(s)")
        for h in path:
            data = self.tree.records[h].block.to_bytes()  # type: ignore[union-attr]
            self.served_blocks += 1
            self.sent_bytes["WB served"] += len(data)
            self._direct.append((party, data))
            if self.notes_events:
                self.note(EventKind.SENT, self.tree.records[h].block, to=party_name(party))

    def append(self, wb: WrappedBlock, ledger: Any) -> None:
        self.block_for_header.setdefault(wb.header.hash, wb.hash)
        self.arrived.setdefault(wb.hash, self.now)
        forks_before = self.tree.forks
        change = self.tree.add(wb, ledger)
        header = wb.header
        self.log(INFO, f"appended block {short(wb.hash)} height {wb.height} trainer "
                       f"{self.names(header.author)} roy {self.names(wb.author)} "
                       f"txs {len(wb.transactions)}")
        if self.tree.forks > forks_before:
            self.log(INFO, f"fork at height {wb.height}: block {short(wb.hash)} has a "
                           f"sibling")
        if self.notes_events:
            self.note(EventKind.APPENDED, wb, message="", parent=short(wb.parent),
                      trainer=self.names(header.author), roy=self.names(wb.author),
                      transactions=len(wb.transactions))
        if change is not None:
            self._on_tip_change(change)
        for orphan in self.tree.take_orphans_of(wb.hash):
            try:
                self._on_block(orphan)
            except Rejected as exc:
                self._reject(WB, exc.reason, orphan)
        self.behaviour.appended(wb)

    def _on_tip_change(self, change: TipChange) -> None:
        self.tip_since = self.now
        if change.is_reorg:
            self.log(INFO, f"reorganisation: {len(change.abandoned)} block(s) abandoned, "
                           f"new tip {short(change.new_tip)}")
        if self.notes_events:
            height = self.tree.records[change.new_tip].height
            if change.is_reorg:
                self.note(EventKind.REORGANISED, hash=short(change.new_tip), height=height,
                          abandoned=tuple(short(h) for h in change.abandoned))
            self.note(EventKind.TIP, hash=short(change.new_tip), height=height)
        adopted_txs = {
            tx.hash
            for h in change.adopted
            for tx in self._block_transactions(h)
        }
        for h in change.abandoned:
            for tx in self._block_transactions(h):
                if tx.hash not in adopted_txs:
                    self.mempool[tx.hash] = tx
        for tx_hash in adopted_txs:
            self.mempool.pop(tx_hash, None)
        ledger = self.tree.tip.ledger
        stale = [h for h, tx in self.mempool.items()
                 if tx.nonce < ledger.next_nonce(tx.sender)]
        for h in stale:
            # Another transaction with this nonce is in the chain: a double spend.
            del self.mempool[h]
            self.rejected_transactions.setdefault(h, Reason.NONCE_ALREADY_USED)
            self.log(INFO, f"dropped TX {short(h)} from the mempool: nonce already used")

    def _block_transactions(self, block_hash: bytes) -> tuple[Transaction, ...]:
        block = self.tree.records[block_hash].block
        return block.transactions if block is not None else ()

    # --- Duties -------------------------------------------------------------------------

    def honest_duties(self) -> None:
        self._break_stalled_tie()
        tip = self.tree.tip
        stage = tip.height
        sid = stage_id(self.model_id, stage)
        own = self.behaviour.own_stage(stage)
        started = self.stage_started.setdefault(stage, self.now)
        # Its hardware has finished the stage (and, rule stage-time, no declaration may
        # come sooner after the parent than the fastest hardware could train it).
        if self.now - started >= self.stage_ticks and (
                not self.rules.stage_time or self.now >= tip.tick + self.ctx.min_stage_ticks):
            if self.my_declaration(tip.hash) is None:
                self.behaviour.try_declare(tip.hash, sid, own)
            if self.my_declaration(tip.hash) is not None:
                self.behaviour.try_header(tip.hash, stage, sid, own)
        self._try_wrap()

    def _break_stalled_tie(self) -> None:
        """Liveness after a tie. First seen stays, so two blocks of one height can split
        the employees so that neither side gathers EMPLOYER_CONFIDENCE declarations. When
        no block has come for ROUND_TIMEOUT_TICKS, move to the lowest-hash tip among those
        of the greatest height: every stalled employee picks the same one."""
        if self.now - self.tip_since < self.scenario.round_timeout_ticks:
            return
        tip = self.tree.tip
        lowest = min((h for h, r in self.tree.records.items() if r.height == tip.height),
                     key=self._tie_key)
        if lowest == tip.hash:
            return
        self.log(INFO, f"round stalled since tick {self.tip_since}: moves from tip "
                       f"{short(tip.hash)} to its equal-height sibling {short(lowest)}")
        self._on_tip_change(self.tree.switch_tip(lowest))

    def _tie_key(self, block_hash: bytes) -> tuple[bytes, bytes]:
        """The order of a stalled tie: the lowest block hash, or under the rule tie-break
        the lowest lottery kernel of the block's header (its author could not choose it;
        Roy can grind the block hash)."""
        block = self.tree.records[block_hash].block
        if not self.rules.tie_break or block is None:
            return b"", block_hash
        return round_kernel(self.scenario, BH, block.header), block_hash

    def _lottery(self, kind: str, parent: bytes, sid: str, coinstake: int) -> bool:
        """This tick's one try for ``kind`` in the round on ``parent``."""
        kernel = lottery.kernel(kind, self.keys.public, parent, sid, self.now,
                                bind_parent=not self.rules.lottery_kernel)
        won = lottery.wins(kernel, coinstake)
        self.log(DEBUG, f"{kind} lottery {sid} tick {self.now}: "
                        f"{lottery.leading_zero_bits(kernel)} zero bits of "
                        f"{lottery.difficulty_bits(coinstake):g} needed, "
                        f"{'won' if won else 'lost'}")
        return won

    def honest_try_declare(self, parent: bytes, sid: str, own: StageResult) -> None:
        if self._lottery(TD, parent, sid, self.scenario.td_coinstake):
            self.declare(parent, sid, own, self.now)

    def declare(self, parent: bytes, sid: str, own: StageResult, tick: int) -> None:
        td = TrainingDeclaration.create(
            self.keys, model_id=self.model_id, stage_id=sid, parent=parent, tick=tick,
            model_hash=own.model_hash, secret=self.behaviour.commit_secret(own.stage, own),
            coinstake=self.scenario.td_coinstake,
        )
        self.rounds[parent].mine = td
        self._record_declaration(td)
        self.ctx.valid_declarations.add(td.hash)
        self._broadcast(td, f"for {sid}")

    def honest_try_header(self, parent: bytes, stage: int, sid: str, own: StageResult) -> None:
        last = self.header_tick(parent)
        if last is not None and self.now - last < self.scenario.round_timeout_ticks:
            return
        declarations = self.rounds[parent].declarations
        if len(declarations) < self.scenario.employer_confidence:
            return
        if not self._lottery(BH, parent, sid, self.scenario.bh_coinstake):
            return
        if last is not None:
            self.log(INFO, f"round timeout: no block on {short(parent)} since its header "
                           f"at tick {last}, tries again")
        bh = self.make_header(parent, stage, sid, own, self.now)
        self.rounds[parent].header_tick = self.now
        self.behaviour.publish_header(bh)

    def _header_declarations(self, parent: bytes) -> list[TrainingDeclaration]:
        """The declarations a header on ``parent`` carries: all this employee holds, or
        under the rule header-cap its own and then the oldest, MAX_HEADER_DECLARATIONS
        in all."""
        held = list(self.rounds[parent].declarations.values())
        cap = self.scenario.max_header_declarations
        if not self.rules.header_cap or len(held) <= cap:
            return held
        me = self.keys.public
        held.sort(key=lambda td: (td.author != me, td.tick, td.author))
        return held[:cap]

    def make_header(self, parent: bytes, stage: int, sid: str, own: StageResult, tick: int,
                    keys: KeyPair | None = None,
                    declarations: list[TrainingDeclaration] | None = None) -> BlockHeader:
        """This employee's header (or, for an attacker, one under ``keys``)."""
        if declarations is None:
            declarations = self._header_declarations(parent)
        revealed = None
        if self.rules.personal_secrets:
            revealed = {td.author: self.behaviour.personal_secret(stage, td.author)
                        for td in declarations}
        return BlockHeader.create(
            keys or self.keys, model_id=self.model_id, stage_id=sid, height=stage + 1,
            parent=parent, tick=tick, secret=own.secret, declarations=declarations,
            coinstake=self.scenario.bh_coinstake, personal_secrets=revealed,
        )

    def honest_publish_header(self, bh: BlockHeader) -> None:
        self.header_for_win.setdefault(header_key(self.scenario, bh), bh.hash)
        self._broadcast(bh, f"at height {bh.height} with {len(bh.declarations)} declarations")
        self._take_header(bh)

    def _try_wrap(self) -> None:
        height = self.tree.tip.height + 1
        if height in self.wrapped_heights:
            return
        k = self.scenario.stakeholders_num
        # Rule roy-rules: a block's tick lies at most TICK_WINDOW after its header's.
        late = self.now - self.scenario.tick_window if self.rules.roy_rules else None
        ready = [(held.header.tick, h) for h in self.roy_of
                 if (held := self.headers[h]).header.height == height
                 and len(held.signatures) == k - 1
                 and (late is None or held.header.tick >= late)]
        if not ready:
            return
        _, h = min(ready)
        self.wrapped_heights.add(height)
        self.behaviour.wrap(self.headers[h].header)

    def build_block(self, header: BlockHeader, limit: int, tick: int | None = None
                    ) -> WrappedBlock:
        held = self.headers[header.hash]
        stakeholders = held.stakeholders
        assert stakeholders is not None  # Roy of a header with stakeholders
        parent = self.tree.records[header.parent]
        transactions = select_transactions(parent.ledger, self.mempool.values(), limit)
        rewards = payouts(header.height, header.author, stakeholders,
                          self.scenario.trainer_share)
        return WrappedBlock.create(
            self.keys, header=header,
            signatures=[held.signatures[pk] for pk in stakeholders[:-1]],
            transactions=transactions, payouts=rewards,
            tick=self.now if tick is None else tick,
        )

    def honest_wrap(self, header: BlockHeader) -> None:
        """Roy's duty: wrap the header with pending transactions, send and apply it."""
        block = self.build_block(header, self.scenario.max_block_transactions)
        self.behaviour.publish_block(block)

    def honest_publish_block(self, block: WrappedBlock) -> None:
        self._broadcast(block, f"at height {block.height} for header "
                               f"{short(block.header.hash)} with {len(block.transactions)} "
                               f"transactions")
        parent = self.tree.records[block.parent]
        self.append(block, parent.ledger.apply(block.transactions, block.payouts))

    def train_up_to(self, stage: int) -> None:
        """Train every stage up to ``stage`` (at the end, to compare secrets)."""
        if self.ctx.own_stage is not None:
            self.behaviour.own_stage(stage)

    def final_report(self, evaluate: Sequence[int]) -> EmployeeReport:
        """The report at the end of a run, after training up to the stages the network
        asked this employee to evaluate (``relay.evaluation_plan``) and, with the real
        Keras trainer, the model's test accuracy after each of them. Every driver (the
        process network, the in-process lockstep) ends a run through this one method."""
        if evaluate:
            self.train_up_to(max(evaluate))
        report = self.report()
        if self.scenario.trainer == "keras":
            report = replace(report, accuracies=tuple(
                (s, float(self.trainer.test_accuracy(s))) for s in evaluate))
        return report

    # --- Reporting ----------------------------------------------------------------------

    def status(self) -> Status:
        """Height, tip, and the canonical block at the target height (None if short):
        the network ends the run when every honest employee has the same one."""
        tip = self.tree.tip
        target = self.scenario.target_blockchain_length - 1
        anchor = self.tree.ancestor(tip.hash, target) if tip.height >= target else None
        return Status(tip.height, tip.hash, anchor)

    def report(self) -> EmployeeReport:
        """Everything the summary needs from this employee."""
        index_of = self.names.employee_index
        chain = []
        for record in self.tree.canonical():
            block = record.block
            if block is None:  # genesis
                chain.append(ChainEntry(record.height, record.hash, record.tick))
                continue
            chain.append(ChainEntry(
                record.height, record.hash, record.tick,
                trainer=index_of.get(block.header.author, -1),
                roy=index_of.get(block.author, -1),
                transactions=tuple(tx.hash for tx in block.transactions),
                payouts=tuple(block.payouts), declarations=len(block.header.declarations),
                secret=block.header.secret))
        return EmployeeReport(
            index=self.index,
            behaviour=str(self.role),
            chain=tuple(chain),
            tree=tuple(TreeEntry(r.hash, r.parent, r.height,
                                 index_of.get(r.block.header.author, -1),
                                 r.block.header.secret, self.arrived.get(r.hash), r.tick)
                       for r in self.tree.records.values()
                       if r.parent is not None and r.block is not None),
            forks=self.tree.forks,
            equivocations=self.equivocations,
            fork_evidence=self.fork_evidence,
            orphans=len(self.tree.orphans),
            served_blocks=self.served_blocks,
            attack=dict(self.attack),
            sent=dict(self.sent),
            sent_bytes=dict(self.sent_bytes),
            accepted=dict(self.accepted),
            rejected={k: dict(v) for k, v in self.rejected.items()},
            mempool=tuple(sorted(self.mempool)),
            rejected_transactions=tuple(sorted(self.rejected_transactions.items())),
            balances=tuple(sorted(self.tree.tip.ledger.balances.items())),
            secrets=tuple(r.secret for r in self.trained),
            model_hashes=tuple(r.model_hash for r in self.trained),
        )
