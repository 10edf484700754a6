"""A role's conduct: the hooks of the employee's state machine that a role may change.

The employee (``node.employee.Employee``) runs the protocol; at each point where a role
can act otherwise it asks its behaviour. ``Behaviour`` itself is the honest employee:
every hook calls the employee's own ``honest_*`` method. An adversary or the employer's
light client is a subclass that overrides the few hooks where it differs, and may keep
state of its own (an attacker's tries this tick, a selfish Roy's withheld blocks). The
employee's state is reached through ``node``; a behaviour changes it only through the
employee's methods, except for its own counters (``node.attack``, ``node.sent``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from simulation.config import Role

if TYPE_CHECKING:  # the employee imports this module
    from simulation.node.employee import Employee, Ready
    from simulation.protocol.messages import AnyMessage, BlockHeader, WrappedBlock
    from simulation.protocol.stages import StageResult


class Behaviour:
    """The honest conduct, and the hooks a role may change."""

    role: ClassVar[Role] = Role.HONEST
    # Whether it trains, and so checks peers' training against its own; those that do
    # not check everything else, like a light client.
    trains: ClassVar[bool] = True
    node: Employee

    def attach(self, node: Employee) -> None:
        """Called once by the employee it belongs to, before its first step."""
        self.node = node

    def block_weight(self) -> Callable[[WrappedBlock], int] | None:
        """How its block tree weighs a block for the fork choice (None: the longest
        chain)."""
        return None

    # --- The step ----------------------------------------------------------------------

    def begin_step(self, tick: int) -> None:
        """Before the employee handles the tick's deliveries."""

    def end_step(self, ready: Ready) -> Ready:
        """What the step sends, as the employee would send it."""
        return ready

    def oversized_frame(self, tick: int, limit: int) -> bytes | None:
        """A frame over the network's size ``limit`` that the process wrapper writes
        after this tick's (None: none)."""
        return None

    # --- Training ------------------------------------------------------------------------

    def own_stage(self, stage: int) -> StageResult:
        """The stage's result this employee declares and checks peers against."""
        return self.node.honest_own_stage(stage)

    def personal_secret(self, stage: int, author: bytes) -> bytes:
        return self.node.honest_personal_secret(stage, author)

    def commit_secret(self, stage: int, own: StageResult) -> bytes:
        return self.node.honest_commit_secret(stage, own)

    # --- Duties ----------------------------------------------------------------------------

    def duties(self) -> None:
        """This tick's own work in the round on the tip."""
        self.node.honest_duties()

    def try_declare(self, parent: bytes, sid: str, own: StageResult) -> None:
        self.node.honest_try_declare(parent, sid, own)

    def try_header(self, parent: bytes, stage: int, sid: str, own: StageResult) -> None:
        self.node.honest_try_header(parent, stage, sid, own)

    def publish_header(self, bh: BlockHeader) -> None:
        self.node.honest_publish_header(bh)

    def saw_header(self, bh: BlockHeader) -> None:
        """A valid header (its own included), before the stakeholder duties for it."""

    def sign(self, bh: BlockHeader) -> None:
        """As a normal stakeholder of a header it accepted."""
        self.node.honest_sign(bh)

    def wrap(self, header: BlockHeader) -> None:
        """As Roy of a header that every other stakeholder signed."""
        self.node.honest_wrap(header)

    def publish_block(self, block: WrappedBlock) -> None:
        self.node.honest_publish_block(block)

    def relay(self, message: AnyMessage) -> None:
        """A message it accepted, in a peer graph: forward it (relay after
        validation)."""
        self.node.honest_relay(message)

    def appended(self, block: WrappedBlock) -> None:
        """A block entered the employee's tree (its own included)."""
