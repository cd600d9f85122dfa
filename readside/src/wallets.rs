//! The `wallets` and `wallet_entries` tables: an append-only ledger per customer (Levy Fleets
//! credit/debit). Each entry records the balance after it, and entries form a chain numbered per
//! wallet, so the balance is the last entry's.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::Currency;
use schemas::wallets::{EntrySource, WalletAction};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::Named;

/// The ledger's table.
pub const ENTRIES: &str = "wallet_entries";

/// The columns an [`Entry`] is read from.
pub const ENTRY_COLUMNS: [&str; 10] = [
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

/// A row of [`ENTRY_COLUMNS`].
#[derive(FromQueryResult)]
struct EntryRow {
    entry_id: Uuid,
    action: Named<WalletAction>,
    amount_cents: i64,
    balance_cents: i64,
    currency: Named<Currency>,
    description: String,
    source: Named<EntrySource>,
    idempotency_key: String,
    reverses_entry_id: Option<Uuid>,
    created_at: DateTime<Utc>,
}

/// An entry from a row of [`ENTRY_COLUMNS`].
pub fn entry_of(row: &QueryResult) -> Result<Entry, DbErr> {
    let row = EntryRow::from_query_result(row, "")?;
    Ok(Entry {
        id: row.entry_id,
        action: row.action.0,
        amount_cents: row.amount_cents,
        balance_cents: row.balance_cents,
        currency: row.currency.0,
        description: row.description,
        source: row.source.0,
        idempotency_key: row.idempotency_key,
        reverses_entry_id: row.reverses_entry_id,
        created_at: row.created_at,
    })
}

/// The entry of `customer_id`'s ledger posted under `key`, if any.
pub async fn by_key(
    db: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
    key: &str,
) -> Result<Option<Entry>, DbErr> {
    let query = entries(tenant, customer_id).and_where(Expr::col("idempotency_key").eq(key)).to_owned();
    db.query_one(&query).await?.as_ref().map(entry_of).transpose()
}

/// The ledger of `customer_id`.
pub fn entries(tenant: &str, customer_id: Uuid) -> SelectStatement {
    Query::select()
        .columns(ENTRY_COLUMNS)
        .from(ENTRIES)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("customer_id").eq(customer_id))
        .to_owned()
}

/// The wallet row: currency and overdraft limit, and whose it is.
#[derive(FromQueryResult)]
pub struct Account {
    /// Its currency.
    #[sea_orm(from_alias = "currency")]
    currency_name: Named<Currency>,
    /// How far below zero it may go.
    pub overdraft_limit_cents: i64,
    /// The owner's subaccount, which its entries' events are about.
    pub subaccount_id: Option<Uuid>,
    /// The owner, when a customer on record (else nobody could say whose events these are).
    owner: Option<Uuid>,
    /// Who collects the owner's payments when not voltbus (a marketplace): then it takes no entries.
    pub payments_collected_by: Option<String>,
}

impl Account {
    /// Its currency.
    pub fn currency(&self) -> Currency {
        self.currency_name.0
    }

    /// Whether its owner is a customer on record.
    pub fn owner_known(&self) -> bool {
        self.owner.is_some()
    }
}

/// The wallet row of `customer_id`, locked until the transaction ends when `lock`.
pub async fn account(
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
        .expr_as(owner("payments_collected_by"), "payments_collected_by")
        .from("wallets")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("customer_id").eq(customer_id))
        .to_owned();
    if lock {
        crate::columns::for_update(db, &mut query);
    }
    db.query_one(&query).await?.as_ref().map(|row| Account::from_query_result(row, "")).transpose()
}

/// The balance after the last entry, and that entry's place in the chain (0, 0 before any).
pub async fn last(db: &impl ConnectionTrait, tenant: &str, customer_id: Uuid) -> Result<(i64, i64), DbErr> {
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
        currency: account.as_ref().map(|a| a.currency()),
        balance_cents,
        overdraft_limit_cents: account.map_or(0, |a| a.overdraft_limit_cents),
        entries,
    })
}

/// The currency of customer `customer_id`'s wallet; `None` before its first entry.
pub async fn currency(db: &impl ConnectionTrait, tenant: &str, customer_id: Uuid) -> Result<Option<Currency>, DbErr> {
    Ok(account(db, tenant, customer_id, false).await?.map(|a| a.currency()))
}

/// What a wallet can pay right now, locked until the transaction ends: currency, balance and
/// overdraft limit; `None` if it has no entry yet.
pub async fn funds(
    tx: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
) -> Result<Option<(Currency, i64, i64)>, DbErr> {
    let Some(account) = account(tx, tenant, customer_id, true).await? else { return Ok(None) };
    let (_, balance) = last(tx, tenant, customer_id).await?;
    Ok(Some((account.currency(), balance, account.overdraft_limit_cents)))
}
