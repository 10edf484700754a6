"""Why a peer message was rejected: one name per rule, as the logs and the results count
them (``rejected[kind][reason]``).

A reason that wraps another (a header's declaration that fails, a block's transaction
that does not apply) is written ``"outer: inner"`` by ``Rejected``; frames that do not
parse are counted under the kind ``UNPARSED`` with the decoder's own description.
"""

from __future__ import annotations

from enum import StrEnum

UNPARSED = "??"  # the message kind of bytes that did not parse


class Reason(StrEnum):
    # Any signed message.
    BAD_SIGNATURE = "bad signature"
    NOT_AN_EMPLOYEE = "author is not an employee"
    TICK_IN_THE_FUTURE = "tick in the future"
    TICK_BEFORE_WINDOW = "tick older than the tick window"
    TICK_BEFORE_ITS_PARENT_BLOCK = "tick before its parent block"
    WRONG_MODEL_ID = "wrong model id"
    WRONG_STAGE = "stage does not match the parent block"
    WRONG_COINSTAKE = "coinstake differs from the network's"
    LOTTERY_NOT_WON = "lottery not won"
    UNKNOWN_PARENT_BLOCK = "unknown parent block"
    # Transactions (TX, and those a block carries).
    DUPLICATE_TRANSACTION = "duplicate transaction"
    NONCE_ALREADY_USED = "nonce already used"
    INSUFFICIENT_BALANCE = "insufficient balance"
    AMOUNT_BELOW_1 = "amount below 1"
    SENDER_EQUALS_RECEIVER = "sender equals receiver"
    TRANSACTION_FOR_ANOTHER_CHAIN = "transaction for another chain"
    TRANSACTION_NAMES_NO_CHAIN = "transaction names no chain"
    # Training declarations (TD).
    DUPLICATE_DECLARATION = "duplicate declaration"
    SECOND_DECLARATION_FOR_THE_ROUND = "second declaration for the round"
    DECLARED_TOO_SOON = "declared sooner than the fastest hardware trains a stage"
    COMMITMENT_NOT_OWN_SECRET = "commitment does not match own training secret"
    MODEL_HASH_NOT_OWN_TRAINING = "model hash differs from own training"
    # Block headers (BH).
    DUPLICATE_HEADER = "duplicate header"
    SECOND_HEADER_FOR_WIN = "equivocation: second header for the same lottery win"
    WRONG_HEIGHT = "height is not parent height + 1"
    TOO_FEW_TRAINING_DECLARATIONS = "too few training declarations"
    TOO_MANY_DECLARATIONS = "more declarations than MAX_HEADER_DECLARATIONS"
    DECLARATIONS_NOT_IN_ORDER = "declarations not from distinct authors in order"
    DECLARATION_FOR_ANOTHER_ROUND = "declaration for another round"
    DECLARATION_NEWER_THAN_THE_HEADER = "declaration newer than the header"
    AUTHOR_NOT_DECLARED = "author has no declaration in the header"
    INVALID_DECLARATION = "invalid declaration"  # : the declaration's own reason
    SECRET_NOT_OWN_TRAINING = "revealed secret differs from own training"
    COMMITMENT_NOT_REVEALED_SECRET = "commitment does not verify against the revealed secret"
    NO_PERSONAL_SECRETS_REVEALED = "no personal secrets revealed"
    UNEXPECTED_PERSONAL_SECRETS = "personal secrets where the rules have none"
    TOO_FEW_STAKEHOLDERS = "too few employees hold stake to draw stakeholders"
    # Stakeholder signatures (SS).
    UNKNOWN_HEADER = "unknown header"
    DUPLICATE_STAKEHOLDER_SIGNATURE = "duplicate stakeholder signature"
    SIGNATURE_FOR_ANOTHER_HEADER = "stakeholder signature for another header"
    SIGNER_NOT_STAKEHOLDER = "signer is not a normal stakeholder of the header"
    # Wrapped blocks (WB).
    DUPLICATE_BLOCK = "duplicate block"
    SECOND_BLOCK_FOR_HEADER = "equivocation: second block for the same header"
    PARENT_BLOCK_IS_INVALID = "parent block is invalid"
    ORPHAN_POOL_FULL = "orphan pool full"
    INVALID_HEADER = "invalid header"  # : the header's own reason
    AUTHOR_NOT_ROY = "author is not the header's Roy"
    SIGNATURES_NOT_FIRST_STAKEHOLDERS = \
        "stakeholder signatures are not exactly the first K-1 stakeholders"
    BLOCK_OLDER_THAN_ITS_HEADER = "block older than its header"
    BLOCK_AFTER_TICK_WINDOW = "block more than TICK_WINDOW ticks after its header"
    TOO_MANY_TRANSACTIONS = "too many transactions"
    TRANSACTIONS_NOT_IN_ORDER = "transactions not in the selection order"
    INVALID_TRANSACTION = "invalid transaction"  # : the transaction's own reason
    TRANSACTION_DOES_NOT_APPLY = "transaction does not apply"  # : the ledger's reason
    PAYOUTS_NOT_REWARD_RULE = "coinbase payouts differ from the reward rule"
    # Block requests (RQ).
    UNKNOWN_REQUESTER = "request from an unknown party"
    OWN_REQUEST = "own request"
    REPEATED_REQUEST = "repeated request"
    REQUEST_RATE_LIMIT_EXCEEDED = "request rate limit exceeded"

    def because(self, inner: str) -> str:
        """The text of this reason wrapping ``inner`` ("invalid header: lottery not won")."""
        return f"{self}: {inner}"
