//! Wallets: an append-only ledger per customer (Levy Fleets credit/debit). The `wallets` group
//! posts entries (`wallet.post_entry`), reverses them (`wallet.refund_entry`) and sets overdraft
//! limits (`wallet.set_overdraft`); rides post their charges through [`post`] in their own
//! transaction.
//!
//! Each entry records the balance after it, and entries form a chain numbered per wallet (a
//! unique index), so the balance is the last entry's and two writers can never both extend the
//! chain from one balance. Writers also lock the wallet's row first, so they queue instead of
//! failing. An idempotency key names each entry: the same key posts once.
//!
//! Layout: `ledger` (the balance rule, apart from the database).

pub mod ledger;

use std::future::Future;
use std::pin::Pin;

use bus::amqp::GroupTopology;
use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::wallets::{
    EntrySource, PostWalletEntry, RefundWalletEntry, SetWalletOverdraft, WalletAction, WalletEntryPosted,
};
use schemas::{AnyMessage, Currency, Envelope, routing};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{from_name, name_of};
use crate::customers;
use crate::outcome::{Outcome, Refusal, codes};

/// The group's name: its queues are `voltbus.wallets…`.
pub const GROUP: &str = "wallets";

const SOURCE: &str = "voltbus/wallets";
const ENTRIES: &str = "wallet_entries";
const ENTRY_COLUMNS: [&str; 10] = [
    "entry_id",
    "action",
    "amount_cents",
    "balance_cents",
    "currency",
    "description",
    "source",
    "idempotency_key",
    "reverses_entry_id",
    "created_at",
];
/// Entries shown with a wallet.
pub const RECENT_ENTRIES: u64 = 20;

/// The wallet commands' queues.
pub fn topology() -> GroupTopology {
    let keys = vec![
        routing::command_key_of::<PostWalletEntry>(),
        routing::command_key_of::<RefundWalletEntry>(),
        routing::command_key_of::<SetWalletOverdraft>(),
    ];
    GroupTopology::commands(GROUP, keys, crate::RETRY_DELAYS.to_vec())
}

/// One entry of a ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Entry {
    /// Entry id.
    pub id: Uuid,
    /// Credit or debit.
    pub action: WalletAction,
    /// Positive amount in minor units.
    pub amount_cents: i64,
    /// The balance after it.
    pub balance_cents: i64,
    /// ISO-4217 currency.
    pub currency: Currency,
    /// Shown to the customer.
    pub description: String,
    /// What caused it.
    pub source: EntrySource,
    /// The key it was posted under.
    pub idempotency_key: String,
    /// The entry this one reverses, for refunds.
    pub reverses_entry_id: Option<Uuid>,
    /// Posted.
    pub created_at: DateTime<Utc>,
}

/// A customer's wallet: balance and recent entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Wallet {
    /// Owner.
    pub customer_id: Uuid,
    /// Currency, set by the first entry; none before.
    pub currency: Option<Currency>,
    /// The last entry's balance (0 before any).
    pub balance_cents: i64,
    /// How far below zero it may go.
    pub overdraft_limit_cents: i64,
    /// The latest entries, newest first.
    pub entries: Vec<Entry>,
}

/// One entry to post.
#[derive(Clone, Debug)]
pub(crate) struct Posting {
    pub action: WalletAction,
    pub amount_cents: i64,
    pub currency: Currency,
    pub description: String,
    pub source: EntrySource,
    pub idempotency_key: String,
    pub reverses: Option<Uuid>,
}

fn entry_of(row: &QueryResult) -> Result<Entry, DbErr> {
    let (action, currency, source): (String, String, String) =
        (row.try_get("", "action")?, row.try_get("", "currency")?, row.try_get("", "source")?);
    Ok(Entry {
        id: row.try_get("", "entry_id")?,
        action: from_name(&action, ENTRIES, "action")?,
        amount_cents: row.try_get("", "amount_cents")?,
        balance_cents: row.try_get("", "balance_cents")?,
        currency: Currency::new(&currency).map_err(|e| DbErr::Type(format!("{ENTRIES}.currency: {e}")))?,
        description: row.try_get("", "description")?,
        source: from_name(&source, ENTRIES, "source")?,
        idempotency_key: row.try_get("", "idempotency_key")?,
        reverses_entry_id: row.try_get("", "reverses_entry_id")?,
        created_at: row.try_get("", "created_at")?,
    })
}

/// The entry of `customer_id`'s ledger posted under `key`, if any.
async fn by_key(db: &impl ConnectionTrait, tenant: &str, customer_id: Uuid, key: &str) -> Result<Option<Entry>, DbErr> {
    let query = entries(tenant, customer_id).and_where(Expr::col("idempotency_key").eq(key)).to_owned();
    db.query_one(&query).await?.as_ref().map(entry_of).transpose()
}

fn entries(tenant: &str, customer_id: Uuid) -> SelectStatement {
    Query::select()
        .columns(ENTRY_COLUMNS)
        .from(ENTRIES)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("customer_id").eq(customer_id))
        .to_owned()
}

/// The wallet row: currency and overdraft limit.
struct Account {
    currency: Currency,
    overdraft_limit_cents: i64,
    /// The owner's subaccount, which its entries' events are about.
    subaccount_id: Option<Uuid>,
    /// Whether the owner is a customer on record (else nobody could say whose events these are).
    owner_known: bool,
}

async fn account(
    db: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
    lock: bool,
) -> Result<Option<Account>, DbErr> {
    let owner = |column: &'static str| {
        let query = Query::select()
            .column(column)
            .from("customers")
            .and_where(Expr::col("tenant").eq(tenant))
            .and_where(Expr::col("customer_id").eq(customer_id))
            .to_owned();
        Expr::SubQuery(None, Box::new(query.into()))
    };
    let mut query = Query::select()
        .columns(["currency", "overdraft_limit_cents"])
        .expr_as(owner("subaccount_id"), "subaccount_id")
        .expr_as(owner("customer_id"), "owner")
        .from("wallets")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("customer_id").eq(customer_id))
        .to_owned();
    if lock {
        crate::database::for_update(db, &mut query);
    }
    let Some(row) = db.query_one(&query).await? else { return Ok(None) };
    let currency: String = row.try_get("", "currency")?;
    Ok(Some(Account {
        currency: Currency::new(&currency).map_err(|e| DbErr::Type(format!("wallets.currency: {e}")))?,
        overdraft_limit_cents: row.try_get("", "overdraft_limit_cents")?,
        subaccount_id: row.try_get("", "subaccount_id")?,
        owner_known: row.try_get::<Option<Uuid>>("", "owner")?.is_some(),
    }))
}

/// The balance after the last entry, and that entry's place in the chain (0, 0 before any).
async fn last(db: &impl ConnectionTrait, tenant: &str, customer_id: Uuid) -> Result<(i64, i64), DbErr> {
    let query = Query::select()
        .columns(["seq", "balance_cents"])
        .from(ENTRIES)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("customer_id").eq(customer_id))
        .order_by("seq", Order::Desc)
        .limit(1)
        .to_owned();
    match db.query_one(&query).await? {
        Some(row) => Ok((row.try_get("", "seq")?, row.try_get("", "balance_cents")?)),
        None => Ok((0, 0)),
    }
}

/// Customer `customer_id`'s wallet with its `recent` latest entries.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, customer_id: Uuid, recent: u64) -> Result<Wallet, DbErr> {
    let account = account(db, tenant, customer_id, false).await?;
    let query = entries(tenant, customer_id).order_by("seq", Order::Desc).limit(recent).to_owned();
    let entries = db.query_all(&query).await?.iter().map(entry_of).collect::<Result<Vec<_>, _>>()?;
    let (_, balance_cents) = last(db, tenant, customer_id).await?;
    Ok(Wallet {
        customer_id,
        currency: account.as_ref().map(|a| a.currency),
        balance_cents,
        overdraft_limit_cents: account.map_or(0, |a| a.overdraft_limit_cents),
        entries,
    })
}

/// The currency of customer `customer_id`'s wallet; `None` before its first entry.
pub async fn currency(db: &impl ConnectionTrait, tenant: &str, customer_id: Uuid) -> Result<Option<Currency>, DbErr> {
    Ok(account(db, tenant, customer_id, false).await?.map(|a| a.currency))
}

/// What a wallet can pay right now, locked until the transaction ends: currency, balance and
/// overdraft limit; `None` if it has no entry yet.
pub(crate) async fn funds(
    tx: &DatabaseTransaction,
    tenant: &str,
    customer_id: Uuid,
) -> Result<Option<(Currency, i64, i64)>, DbErr> {
    let Some(account) = account(tx, tenant, customer_id, true).await? else { return Ok(None) };
    let (_, balance) = last(tx, tenant, customer_id).await?;
    Ok(Some((account.currency, balance, account.overdraft_limit_cents)))
}

/// The refusal a ledger rule amounts to.
fn refusal_of(refused: ledger::Refused) -> Refusal {
    match refused {
        ledger::Refused::Shortfall { .. } => Refusal::coded(codes::INSUFFICIENT_FUNDS, refused.to_string()),
        ledger::Refused::Overflow => Refusal::invalid(refused.to_string()),
    }
}

/// Opens customer `customer_id`'s wallet in `currency` and locks it. Its row is the lock every
/// writer of the ledger queues on; a concurrent opener waits here, then finds it open.
async fn open(
    tx: &DatabaseTransaction,
    tenant: &str,
    customer_id: Uuid,
    currency: Currency,
    now: DateTime<Utc>,
) -> Result<Account, DbErr> {
    let open = Query::insert()
        .into_table("wallets")
        .columns(["tenant", "customer_id", "currency", "overdraft_limit_cents", "created_at"])
        .values_panic([tenant.into(), customer_id.into(), currency.as_str().into(), 0i64.into(), now.into()])
        .on_conflict(OnConflict::columns(["tenant", "customer_id"]).do_nothing().to_owned())
        .to_owned();
    tx.execute(&open).await?;
    account(tx, tenant, customer_id, true)
        .await?
        .ok_or_else(|| DbErr::Custom(format!("wallet of {customer_id} neither created nor found")))
}

/// Appends `posting` to customer `customer_id`'s ledger, or answers the entry already posted
/// under its idempotency key; announces a new entry.
pub(crate) async fn post(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    customer_id: Uuid,
    posting: &Posting,
) -> Result<Outcome<Entry>, DbErr> {
    let tenant = cause.tenant.as_str();
    let now = Utc::now();
    let account = match account(tx, tenant, customer_id, true).await? {
        Some(account) => account,
        None => {
            // No wallet yet: an entry that could not land on an empty one leaves none behind
            // (the refusal commits; a wallet in its currency would stay).
            if let Err(refused) = ledger::next_balance(0, 0, posting.action, posting.amount_cents) {
                return Ok(Outcome::Refused(refusal_of(refused)));
            }
            open(tx, tenant, customer_id, posting.currency, now).await?
        }
    };
    if !account.owner_known {
        // Its entries' events would be about nobody's subaccount, which every partner of the
        // organisation reads: refused rather than announced to all.
        return Ok(Outcome::Refused(Refusal::not_found(format!("no customer {customer_id}"))));
    }
    if let Some(existing) = by_key(tx, tenant, customer_id, &posting.idempotency_key).await? {
        let same = existing.action == posting.action
            && existing.amount_cents == posting.amount_cents
            && existing.currency == posting.currency;
        return Ok(if same {
            Outcome::Done(existing)
        } else {
            Outcome::Refused(Refusal::conflict(format!(
                "idempotency key `{}` already posted another entry ({})",
                posting.idempotency_key, existing.id
            )))
        });
    }
    if account.currency != posting.currency {
        return Ok(Outcome::Refused(Refusal::invalid(format!(
            "the wallet is in {}, not {}",
            account.currency, posting.currency
        ))));
    }
    let (seq, balance) = last(tx, tenant, customer_id).await?;
    let after = match ledger::next_balance(balance, account.overdraft_limit_cents, posting.action, posting.amount_cents)
    {
        Ok(after) => after,
        Err(refused) => return Ok(Outcome::Refused(refusal_of(refused))),
    };
    let entry = Entry {
        id: Uuid::now_v7(),
        action: posting.action,
        amount_cents: posting.amount_cents,
        balance_cents: after,
        currency: posting.currency,
        description: posting.description.clone(),
        source: posting.source,
        idempotency_key: posting.idempotency_key.clone(),
        reverses_entry_id: posting.reverses,
        created_at: now,
    };
    let insert = Query::insert()
        .into_table(ENTRIES)
        .columns(["tenant", "customer_id", "seq"].into_iter().chain(ENTRY_COLUMNS))
        .values_panic([
            tenant.into(),
            customer_id.into(),
            (seq + 1).into(),
            entry.id.into(),
            name_of(&entry.action).into(),
            entry.amount_cents.into(),
            entry.balance_cents.into(),
            entry.currency.as_str().into(),
            entry.description.clone().into(),
            name_of(&entry.source).into(),
            entry.idempotency_key.clone().into(),
            entry.reverses_entry_id.into(),
            now.into(),
        ])
        .to_owned();
    tx.execute(&insert).await?;
    let event = WalletEntryPosted {
        customer_id,
        entry_id: entry.id,
        action: entry.action,
        amount_cents: entry.amount_cents,
        balance_cents: entry.balance_cents,
        currency: entry.currency,
        description: entry.description.clone(),
        source: entry.source,
        reverses_entry_id: entry.reverses_entry_id,
        subaccount_id: account.subaccount_id,
    };
    outbox::enqueue_event(tx, cause, SOURCE, event).await?;
    Ok(Outcome::Done(entry))
}

async fn refund(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    command: &RefundWalletEntry,
) -> Result<Outcome<Entry>, DbErr> {
    let tenant = cause.tenant.as_str();
    // Queue behind other writers first, so two refunds of one entry see each other.
    account(tx, tenant, command.customer_id, true).await?;
    let by_id = entries(tenant, command.customer_id).and_where(Expr::col("entry_id").eq(command.entry_id)).to_owned();
    let Some(original) = tx.query_one(&by_id).await?.as_ref().map(entry_of).transpose()? else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no wallet entry {}", command.entry_id))));
    };
    if original.reverses_entry_id.is_some() {
        return Ok(Outcome::Refused(Refusal::conflict("a refund cannot be refunded; post a new entry instead")));
    }
    let posting = Posting {
        action: match original.action {
            WalletAction::Credit => WalletAction::Debit,
            WalletAction::Debit => WalletAction::Credit,
        },
        amount_cents: original.amount_cents,
        currency: original.currency,
        description: command.reason.clone(),
        source: EntrySource::Refund,
        // One refund per entry: a second refund request finds this key taken by the first.
        idempotency_key: format!("refund:{}", original.id),
        reverses: Some(original.id),
    };
    if by_key(tx, tenant, command.customer_id, &posting.idempotency_key).await?.is_some() {
        return Ok(Outcome::Refused(Refusal::conflict(format!("entry {} is already refunded", original.id))));
    }
    post(tx, cause, command.customer_id, &posting).await
}

async fn set_overdraft(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    command: &SetWalletOverdraft,
) -> Result<Outcome<Wallet>, DbErr> {
    let tenant = cause.tenant.as_str();
    if command.overdraft_limit_cents < 0 {
        return Ok(Outcome::Refused(Refusal::invalid("overdraft_limit_cents must be 0 or more")));
    }
    let update = Query::update()
        .table("wallets")
        .value("overdraft_limit_cents", command.overdraft_limit_cents)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("customer_id").eq(command.customer_id))
        .to_owned();
    if tx.execute(&update).await?.rows_affected() == 0 {
        return Ok(Outcome::Refused(Refusal::conflict("the wallet has no entry yet: credit it first")));
    }
    find(tx, tenant, command.customer_id, RECENT_ENTRIES).await.map(Outcome::Done)
}

/// Handles the wallet commands.
pub struct Wallets;

impl Handler for Wallets {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database(GROUP)?;
            let message = context.message;
            let customer_id = match &message.data {
                AnyMessage::PostWalletEntry(c) => c.customer_id,
                AnyMessage::RefundWalletEntry(c) => c.customer_id,
                AnyMessage::SetWalletOverdraft(c) => c.customer_id,
                _ => return Err(HandlerError::unhandled(message)),
            };
            let reply = async {
                if customers::find(tx, message.tenant.as_str(), customer_id).await?.is_none() {
                    let refused = Outcome::<()>::Refused(Refusal::not_found(format!("no customer {customer_id}")));
                    return Ok(refused.to_reply());
                }
                Ok::<_, DbErr>(match &message.data {
                    AnyMessage::PostWalletEntry(command) => {
                        if command.amount_cents <= 0 {
                            Outcome::<()>::Refused(Refusal::invalid("amount_cents must be positive")).to_reply()
                        } else {
                            let posting = Posting {
                                action: command.action,
                                amount_cents: command.amount_cents,
                                currency: command.currency,
                                description: command.description.clone(),
                                source: command.source,
                                idempotency_key: command.idempotency_key.clone(),
                                reverses: None,
                            };
                            post(tx, message, customer_id, &posting).await?.to_reply()
                        }
                    }
                    AnyMessage::RefundWalletEntry(command) => refund(tx, message, command).await?.to_reply(),
                    AnyMessage::SetWalletOverdraft(command) => set_overdraft(tx, message, command).await?.to_reply(),
                    _ => Outcome::<()>::Refused(Refusal::invalid("not a wallet command")).to_reply(),
                })
            };
            reply.await.map(Some).map_err(|error| HandlerError::Retryable(error.to_string()))
        })
    }
}
