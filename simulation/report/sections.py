"""The parts of a run's summary as typed sections.

Each section is a frozen dataclass: ``summarize`` builds it from the parties' reports,
``to_json`` gives its keys of the results JSON (as documented in the README), and
``lines`` renders it for the console summary. ``from_summary`` reads it back from a
summary (the console summary is rendered from the results, so that what is printed is
what is written).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from simulation.protocol.messages import KINDS


def _hops(value: float | None) -> str:
    return "never" if value is None else f"{value:g} hops"


def _ticks(value: float | None) -> str:
    return "-" if value is None else f"{value:g} tick(s)"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def _dropped(counts: dict[str, int]) -> str:
    """{"loss": 3, "offline": 2} -> "3 lost, 2 to offline employees"; "none"."""
    words = {"loss": "lost", "partition": "across a split", "offline": "to offline employees"}
    parts = [f"{n} {words.get(cause, cause)}" for cause, n in counts.items() if n]
    return ", ".join(parts) or "none"


def or_none(accuracy: float | None, trainer: str) -> str:
    """A test accuracy for a summary line, or why there is none (never a bare None)."""
    if accuracy is not None:
        return str(accuracy)
    return "none: hash trainer" if trainer == "hash" else "none: not evaluated"


def _flat(record: Any) -> dict[str, Any]:
    """A flat section's fields, in order, as its JSON object."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


@dataclass(frozen=True)
class BlockRow:
    """A block of the reference chain, as the summary lists it."""

    height: int
    hash: str  # hex
    trainer: str | None  # the header's author's name (None: genesis)
    roy: str | None  # the block's author's name
    tick: int
    transactions: int
    declarations: int


@dataclass(frozen=True)
class ChainSection:
    """The reference chain: the lowest-index live honest employee's, on the reference
    hardware if there is one."""

    length: int
    tip_hash: str | None
    reference_employee: str | None
    blocks: tuple[BlockRow, ...]

    def to_json(self) -> dict[str, Any]:
        return {"chain": {"length": self.length, "tip_hash": self.tip_hash,
                          "reference_employee": self.reference_employee,
                          "blocks": [_flat(b) for b in self.blocks]}}

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> ChainSection:
        chain = summary["chain"]
        return cls(chain["length"], chain["tip_hash"], chain["reference_employee"],
                   tuple(BlockRow(**b) for b in chain["blocks"]))

    def lines(self) -> list[str]:
        out = [f"Chain of {self.reference_employee}: {self.length} blocks, tip "
               f"{(self.tip_hash or '')[:16]}"]
        for b in self.blocks:
            if b.trainer is None:
                out.append(f"  #{b.height} {b.hash[:16]} genesis")
            else:
                out.append(f"  #{b.height} {b.hash[:16]} tick {b.tick:>4} trainer "
                           f"{b.trainer:>4} roy {b.roy:>4} txs {b.transactions}")
        return out


@dataclass(frozen=True)
class AgreementSection:
    """Whether the live honest employees hold the same chain."""

    all_honest_agree: bool
    common_prefix_length: int
    tips: dict[str, str]  # name -> tip hash (hex)
    lengths: dict[str, int]  # name -> blocks in its chain

    def to_json(self) -> dict[str, Any]:
        return {"agreement": _flat(self)}

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> AgreementSection:
        return cls(**summary["agreement"])

    def lines(self) -> list[str]:
        agree = "yes" if self.all_honest_agree else "NO"
        return [f"All honest employees agree: {agree} (common prefix "
                f"{self.common_prefix_length} blocks)"]


@dataclass(frozen=True)
class MessagesSection:
    """Broadcasts by kind from every party; receipts as the honest employees saw them."""

    sent: dict[str, int]
    accepted: dict[str, int]
    rejected: dict[str, dict[str, int]]  # kind -> reason -> count
    adversarial_sent: dict[str, int]  # what adversaries sent beyond the six kinds
    replayed_transactions: int

    def to_json(self) -> dict[str, Any]:
        return {"messages": _flat(self)}

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> MessagesSection:
        return cls(**summary["messages"])

    def lines(self) -> list[str]:
        out = ["Messages    sent  accepted (receipts at honest employees)"]
        for kind in KINDS:
            out.append(f"  {kind}   {self.sent[kind]:>7} {self.accepted[kind]:>9}")
        if self.rejected:
            out.append("Rejected by honest employees:")
            for kind, reasons in self.rejected.items():
                for reason, n in reasons.items():
                    out.append(f"  {kind} x{n}: {reason}")
        else:
            out.append("Rejected: none")
        return out


@dataclass(frozen=True)
class NetworkSection:
    """How blocks spread (``propagation.network_metrics``) and what the network model
    did to the copies."""

    propagation_p50_ticks: float | None
    propagation_p90_ticks: float | None
    propagation_p90_max_ticks: int | None
    blocks_measured: int
    blocks_below_p90: int
    stale_blocks: int
    stale_rate: float
    fork_depths: dict[str, int]
    block_bytes_mean: float | None
    finality_depth: int
    finality_p50_ticks: float | None
    finality_p90_ticks: float | None
    blocks_final: int
    block_requests: int
    blocks_served: int
    bytes_sent: int
    bytes_sent_by_employee: dict[str, dict[str, int]]
    bytes_relayed: dict[str, int] | None
    tick_milliseconds: int
    copies_dropped: dict[str, int]
    offline_at_end: list[str]
    regions: dict[str, str] | None
    # The peer graph (``propagation.peer_graph_metrics``); summaries written before it
    # have none of these.
    topology: str = "full"
    hops_p50: float | None = None
    hops_p90: float | None = None
    blocks_hops_measured: int = 0
    duplicates: int = 0
    uploaded_bytes_per_employee: float | None = None
    uploaded_bytes_max: int | None = None
    employer_peers: list[str] | None = None
    employer_heard: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"network": _flat(self)}

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> NetworkSection | None:
        network = summary.get("network")
        return cls(**network) if network else None

    def lines(self) -> list[str]:
        if not self.blocks_measured:
            return self._graph_lines()
        return [
            f"Propagation: half of the honest employees held a block after "
            f"{_ticks(self.propagation_p50_ticks)}, 90% after "
            f"{_ticks(self.propagation_p90_ticks)} (median of {self.blocks_measured} "
            f"blocks); stale blocks {self.stale_blocks} (rate {self.stale_rate:.3f}); "
            f"{self.bytes_sent} bytes broadcast by the employees",
            f"Finality: a block was {self.finality_depth} deep at every honest employee "
            f"after {_ticks(self.finality_p50_ticks)} (median; 90% within "
            f"{_ticks(self.finality_p90_ticks)}; {self.blocks_final} blocks); catch-up "
            f"{self.block_requests} requests, {self.blocks_served} blocks served; "
            f"copies dropped {_dropped(self.copies_dropped)}",
            *self._graph_lines()]

    def _graph_lines(self) -> list[str]:
        if self.topology == "full":
            return []
        heard = self.employer_heard or {}
        peers = self.employer_peers or []
        return [
            f"Peer graph {self.topology}: a block reached half of the honest employees "
            f"in {_hops(self.hops_p50)}, 90% in {_hops(self.hops_p90)} (median of "
            f"{self.blocks_hops_measured} blocks); {self.duplicates} duplicate copies "
            f"declined; {self.uploaded_bytes_per_employee} bytes uploaded per employee "
            f"(most {self.uploaded_bytes_max})",
            f"Employer's peers: {len(peers)} ({', '.join(peers[:8])}"
            f"{', ...' if len(peers) > 8 else ''}); it was delivered "
            f"{sum(heard.values())} copies from {len(heard)} of them"]


@dataclass(frozen=True)
class FairnessSection:
    """Who earned the rewards against the compute they have (``fairness.fairness``)."""

    gini_rewards: float | None
    nakamoto_coefficient: int | None
    by_speed_factor: dict[str, dict[str, Any]]
    employees: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"fairness": _flat(self)}

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> FairnessSection | None:
        fair = summary.get("fairness")
        return cls(**fair) if fair else None

    def lines(self) -> list[str]:
        if self.nakamoto_coefficient is None:
            return []
        groups = self.by_speed_factor
        shares = "" if len(groups) < 2 else "; by hardware factor, reward / compute share: " + \
            ", ".join(f"x{factor} {_percent(g['reward_share'])} / "
                      f"{_percent(g['compute_share'])}" for factor, g in groups.items())
        return [f"Fairness: Gini of rewards {self.gini_rewards:.3f}, Nakamoto "
                f"coefficient {self.nakamoto_coefficient}{shares}"]


@dataclass(frozen=True)
class TrainingSection:
    """Whether the honest employees' training agreed, and how long it took."""

    stages_compared: int
    secrets_identical: bool | None  # None: no stage to compare
    employees_without_secrets: list[str]
    computations: dict[str, int]  # computation -> honest employees
    secrets_disagree: dict[str, float | None]  # "a/b" -> share of stages that differ
    disagreement_simulated: bool
    median_ms_per_sample: float | None
    median_first_stage_seconds: float | None
    # The useful work (report.work): the unit, the network's training in it, by kind, and
    # the share that went into the delivered model.
    work_unit: str = "stages"
    work_total: float = 0.0
    work: dict[str, float] = field(default_factory=dict)
    useful_share: float | None = None
    certified_stages: int = 0
    work_per_certified_sample: float | None = None
    useful_work_per_certified_sample: float | None = None
    stage_cache: str = ""  # STAGE_CACHE: most stages were read, not trained

    def to_json(self) -> dict[str, Any]:
        return {"training": _flat(self)}

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> TrainingSection:
        return cls(**summary["training"])

    def lines(self) -> list[str]:
        if len(self.computations) > 1:
            differ = ", ".join(f"{pair} {_percent(share)} of stages"
                               for pair, share in self.secrets_disagree.items())
            simulated = " (simulated noise model)" if self.disagreement_simulated else ""
            return [f"Training: identical within each computation "
                    f"({self.computations}): {self.secrets_identical}; "
                    f"secrets differ across them{simulated}: {differ} "
                    f"({self.stages_compared} stages)", *self.work_lines()]
        return [f"Training: secrets and model hashes identical across honest "
                f"employees: {self.secrets_identical} ({self.stages_compared} stages)",
                *self.work_lines()]

    def work_lines(self) -> list[str]:
        if not self.work_total:
            return []
        unit = {"cpu_seconds": "CPU s", "samples": "samples"}.get(self.work_unit, "stages")
        total = f"{self.work_total:.2f} {unit}" if self.work_unit == "cpu_seconds" else \
            f"{self.work_total:.0f} {unit}"
        rest = ", ".join(f"{kind.replace('_', ' ')} {_percent(value / self.work_total)}"
                         for kind, value in self.work.items() if value and kind != "useful")
        cached = [f"Stage cache on ({self.stage_cache}): stages were read from it instead of "
                  f"trained, so this run's CPU seconds do not measure the network; work "
                  f"is counted in samples"] if self.stage_cache else []
        return [f"Work: {total} of training, {_percent(self.useful_share)} of it useful "
                f"(one training of each of the {self.certified_stages} certified stages)"
                + (f"; {rest}" if rest else ""), *cached]


@dataclass(frozen=True)
class EmployerSection:
    """The employer's light client: its chain and the model it takes."""

    chain_length: int
    tip_hash: str
    poisoned_blocks: int | None  # None: an honest secret was missing to compare
    model_source: str  # "honest", "poisoned", "genesis" or "unknown"
    model_stage: int | None
    model_test_accuracy: float | None
    rejected: dict[str, dict[str, int]]

    def to_json(self) -> dict[str, Any]:
        return {"employer": _flat(self)}

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> EmployerSection | None:
        employer = summary.get("employer")
        return cls(**employer) if employer else None

    def lines(self, trainer: str) -> list[str]:
        return [f"Employer (light client): chain of {self.chain_length} blocks, "
                f"{self.poisoned_blocks} poisoned; takes the {self.model_source} model "
                f"after stage {self.model_stage} (test accuracy "
                f"{or_none(self.model_test_accuracy, trainer)})"]


@dataclass(frozen=True)
class CoinTotals:
    """Conservation: the reference chain's balances add up to genesis + coinbase."""

    genesis: int
    minted: int
    balances_total: int | None  # None: no reference chain
    rewards_total: int


@dataclass(frozen=True)
class CoinsSection:
    """The rewards each party earned along the reference chain, the balances at its tip,
    and their totals."""

    rewards: dict[str, int]
    balances: dict[str, int]
    coins: CoinTotals

    def to_json(self) -> dict[str, Any]:
        return {"rewards": self.rewards, "balances": self.balances,
                "coins": _flat(self.coins)}

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> CoinsSection:
        return cls(summary["rewards"], summary["balances"], CoinTotals(**summary["coins"]))

    def lines(self) -> list[str]:
        return ["Rewards: " + ", ".join(f"{n} {c}" for n, c in self.rewards.items())]
