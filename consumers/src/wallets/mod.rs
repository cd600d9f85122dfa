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

use crate::groups::Group;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, Utc};
use schemas::Recipient;
use schemas::wallets::{EntrySource, RefundWalletEntry, SetWalletOverdraft, WalletAction, WalletEntryPosted};
use schemas::{AnyMessage, Currency, Envelope};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use uuid::Uuid;

use crate::customers;
use readside::columns::name_of;
pub(crate) use readside::wallets::{
    Account, ENTRIES, ENTRY_COLUMNS, Entry, RECENT_ENTRIES, Wallet, account, by_key, entries, entry_of, find, funds,
    last,
};
use readside::{Outcome, Refusal, codes};

/// The group's name: its queues are `voltbus.wallets…`.
pub const GROUP: &str = Recipient::Wallets.name();

const SOURCE: &str = "voltbus/wallets";

/// The group: its commands, one a transaction.
pub fn groups() -> Vec<Group> {
    vec![Group::handling(Recipient::Wallets, Arc::new(Wallets))]
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
    // The seed: a marketplace's users pay the marketplace; every payment function here is off.
    let refused = |collector: &str| {
        let why =
            format!("customer {customer_id}'s payments are collected by {collector}: their wallet takes no entries");
        Ok(Outcome::Refused(Refusal::conflict(why)))
    };
    let account = match account(tx, tenant, customer_id, true).await? {
        // The wallet's read brings the owner's collector along: no second read of the customer.
        Some(account) => match &account.payments_collected_by {
            Some(collector) => return refused(collector),
            None => account,
        },
        None => {
            if let Some(collector) = readside::customers::payments_collected_by(tx, tenant, customer_id).await? {
                return refused(&collector);
            }
            // No wallet yet: an entry that could not land on an empty one leaves none behind
            // (the refusal commits; a wallet in its currency would stay).
            if let Err(refused) = ledger::next_balance(0, 0, posting.action, posting.amount_cents) {
                return Ok(Outcome::Refused(refusal_of(refused)));
            }
            open(tx, tenant, customer_id, posting.currency, now).await?
        }
    };
    if !account.owner_known() {
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
    if account.currency() != posting.currency {
        return Ok(Outcome::Refused(Refusal::invalid(format!(
            "the wallet is in {}, not {}",
            account.currency(),
            posting.currency
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
