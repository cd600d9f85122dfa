//! Wallets: an append-only ledger per customer (Levy Fleets credit/debit, EVM balance).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Currency;
use crate::Reach;
use crate::message::message;

/// Direction of a ledger entry, spelled as the seed's `action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WalletAction {
    /// Adds to the balance.
    Credit,
    /// Takes from the balance.
    Debit,
}

/// What caused an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntrySource {
    /// A partner's `POST /customers/{id}/wallet`.
    Manual,
    /// A ride's charge at `ride.ended`.
    Ride,
    /// A charging purchase paid from the balance.
    Purchase,
    /// A replenishment through a payment provider.
    Replenishment,
    /// A reversing entry.
    Refund,
}

/// Post a credit or debit (`{action, amount_cents, description}`), at most once per idempotency key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PostWalletEntry {
    /// Wallet owner.
    pub customer_id: Uuid,
    /// Credit or debit.
    pub action: WalletAction,
    /// Positive amount in minor units.
    pub amount_cents: i64,
    /// ISO-4217 currency of the wallet.
    pub currency: Currency,
    /// Shown to the customer.
    pub description: String,
    /// What caused it.
    pub source: EntrySource,
    /// Same key, same entry: a retried call never posts twice.
    pub idempotency_key: String,
}
message!(PostWalletEntry, "wallet.post_entry", (1, 0), Command(Wallets), Wallets, |m| Some(m.customer_id.to_string()));

/// Reverse an entry with an entry of the opposite direction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RefundWalletEntry {
    /// Wallet owner.
    pub customer_id: Uuid,
    /// The entry to reverse.
    pub entry_id: Uuid,
    /// Why.
    pub reason: String,
}
message!(RefundWalletEntry, "wallet.refund_entry", (1, 0), Command(Wallets), Wallets, |m| Some(
    m.customer_id.to_string()
));

/// Set how far below zero a wallet may go (0: never).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetWalletOverdraft {
    /// Wallet owner.
    pub customer_id: Uuid,
    /// Minor units the balance may fall below zero, 0 or more.
    pub overdraft_limit_cents: i64,
}
message!(SetWalletOverdraft, "wallet.set_overdraft", (1, 0), Command(Wallets), Wallets, |m| Some(
    m.customer_id.to_string()
));

/// An entry was appended to a wallet's ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WalletEntryPosted {
    /// Wallet owner.
    pub customer_id: Uuid,
    /// The new entry.
    pub entry_id: Uuid,
    /// Credit or debit.
    pub action: WalletAction,
    /// Positive amount in minor units.
    pub amount_cents: i64,
    /// Balance after the entry.
    pub balance_cents: i64,
    /// ISO-4217 currency.
    pub currency: Currency,
    /// Shown to the customer.
    pub description: String,
    /// What caused it.
    pub source: EntrySource,
    /// The entry this one reverses, for refunds.
    pub reverses_entry_id: Option<Uuid>,
    /// The wallet owner's subaccount; none for a customer of the whole organisation (since 1.1).
    #[serde(default)]
    pub subaccount_id: Option<Uuid>,
}
message!(
    WalletEntryPosted,
    "wallet.entry_posted",
    (1, 1),
    Event,
    Wallets,
    |m| Some(m.customer_id.to_string()),
    offered(WalletRead, |m| Reach::of(m.subaccount_id))
);
