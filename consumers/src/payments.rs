//! Purchases and their payment (EVM seed): a finished charging session's purchase is paid from
//! the wallet balance (`EVM`) by the `payments` group, which also keeps the app's feedback.
//!
//! Paying posts a debit to the customer's wallet ledger under the idempotency key
//! `purchase:{id}`, so a purchase is charged at most once whatever is retried, and marks the
//! purchase `success`; the app hears `{status, amount}` on `{topic}.PAYMENT` (through the outbox,
//! so only once the payment is committed). A wallet that cannot cover it refuses the payment
//! (402 `INSUFFICIENT_FUNDS`) and the app hears `fail`.
//!
//! Top-ups go through an external provider (QPay): the edge creates the provider's invoice and
//! records it (`balance.replenish`); once the provider confirms the payment (its own check, never
//! an unsigned callback alone), `payment.settle` credits the wallet under the idempotency key
//! `invoice:{id}` and marks the invoice `success`, so a second confirmation credits nothing; the
//! app hears `{topic}.REPLENISHMENT`.

use crate::groups::Group;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bus::outbox::{self, Destination, Outgoing};
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, Utc};
use schemas::Recipient;
use schemas::payments::{
    InvoicePurchase, InvoiceStatus, LeaveFeedback, PayPurchase, PaymentOption, PaymentStatus, ReplenishBalance,
    ReplenishmentStatus, SettleProviderPayment,
};
use schemas::subjects::Channel;
use schemas::wallets::{EntrySource, WalletAction};
use schemas::{AnyMessage, Currency, Envelope, subjects};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use serde_json::json;
use uuid::Uuid;

use crate::wallets::{self, Posting};
pub(crate) use readside::payments::{Purchase, find, purchase_of, select};
use readside::{Outcome, Refusal};

/// The group's name.
pub const GROUP: &str = Recipient::Payments.name();

const SOURCE: &str = "voltbus/payments";

/// The group: its commands, one a transaction.
pub fn groups() -> Vec<Group> {
    vec![Group::handling(Recipient::Payments, Arc::new(Payments))]
}

/// The app's `{topic}.PAYMENT`, through the outbox.
async fn tell(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    purchase: &Purchase,
    paid: bool,
) -> Result<(), DbErr> {
    let status = if paid { schemas::payments::Outcome::Success } else { schemas::payments::Outcome::Fail };
    let message = PaymentStatus { status, amount: purchase.amount, currency: purchase.currency };
    let envelope = Envelope::new(cause.tenant.clone(), SOURCE, message)
        .caused_by(cause)
        .with_subject(purchase.customer_id.to_string());
    let subject = subjects::user_channel(&cause.tenant, purchase.customer_id, Channel::Payment);
    outbox::enqueue_encoded(tx, &[Outgoing::new(&envelope, Destination::Realtime { subject })]).await
}

async fn pay(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    command: &PayPurchase,
    now: DateTime<Utc>,
) -> Result<Outcome<serde_json::Value>, DbErr> {
    let tenant = cause.tenant.as_str();
    let mut query =
        select(tenant, command.user_id).and_where(Expr::col("purchase_id").eq(command.purchase_id)).to_owned();
    readside::columns::for_update(tx, &mut query);
    let Some(purchase) = tx.query_one(&query).await?.map(|row| purchase_of(&row)).transpose()? else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no purchase {}", command.purchase_id))));
    };
    if purchase.status != "pending" {
        return Ok(Outcome::Refused(Refusal::conflict(format!("the purchase is {}", purchase.status))));
    }
    if command.option != PaymentOption::Evm {
        return Ok(Outcome::Refused(Refusal::invalid("only EVM (the balance) can pay for now")));
    }
    // Nothing to take (a session that delivered nothing): paid without a ledger entry, which
    // the wallet would refuse for a zero amount.
    if purchase.amount == 0 {
        let settled = json!({ "option": "EVM", "invoiceId": purchase.id, "newBalance": wallets::last(tx, tenant, command.user_id).await?.1 });
        mark_paid(tx, tenant, purchase.id, "EVM", now).await?;
        tell(tx, cause, &purchase, true).await?;
        return Ok(Outcome::Done(settled));
    }
    let posting = Posting {
        action: WalletAction::Debit,
        amount_cents: purchase.amount,
        currency: purchase.currency,
        description: format!("charging session {}", purchase.session_id),
        source: EntrySource::Purchase,
        idempotency_key: format!("purchase:{}", purchase.id),
        reverses: None,
    };
    let entry = match wallets::post(tx, cause, command.user_id, &posting).await? {
        Outcome::Done(entry) => entry,
        Outcome::Refused(refusal) => {
            tell(tx, cause, &purchase, false).await?;
            return Ok(Outcome::Refused(refusal));
        }
    };
    mark_paid(tx, tenant, purchase.id, "EVM", now).await?;
    tell(tx, cause, &purchase, true).await?;
    Ok(Outcome::Done(json!({ "option": "EVM", "invoiceId": purchase.id, "newBalance": entry.balance_cents })))
}

async fn mark_paid(
    tx: &DatabaseTransaction,
    tenant: &str,
    id: Uuid,
    option: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let update = Query::update()
        .table("purchases")
        .value("status", "success")
        .value("payment_option", option)
        .value("paid_at", now)
        .value("updated_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("purchase_id").eq(id))
        .to_owned();
    tx.execute(&update).await.map(|_| ())
}

async fn feedback(
    tx: &DatabaseTransaction,
    tenant: &str,
    command: &LeaveFeedback,
    now: DateTime<Utc>,
) -> Result<Outcome<serde_json::Value>, DbErr> {
    if !(1..=5).contains(&command.feedback.score) {
        return Ok(Outcome::Refused(Refusal::invalid("the score is 1 to 5")));
    }
    let update = Query::update()
        .table("purchases")
        .value("feedback_score", i16::from(command.feedback.score))
        .value("feedback_description", command.feedback.description.as_str())
        .value("updated_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("customer_id").eq(command.user_id))
        .and_where(Expr::col("purchase_id").eq(command.purchase_id))
        .to_owned();
    if tx.execute(&update).await?.rows_affected() == 0 {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no purchase {}", command.purchase_id))));
    }
    Ok(Outcome::Done(json!({})))
}

/// A provider's invoice to record: for a top-up, or for purchase `purchase_id`.
struct NewInvoice<'a> {
    id: Uuid,
    customer_id: Uuid,
    purchase_id: Option<Uuid>,
    amount: i64,
    currency: Currency,
    reference: &'a str,
    url: &'a str,
    provider: PaymentOption,
}

/// Records a provider's invoice (once: a repeat of the command changes nothing).
async fn record_invoice(
    tx: &DatabaseTransaction,
    tenant: &str,
    invoice: &NewInvoice<'_>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let purpose = if invoice.purchase_id.is_some() { "purchase" } else { "replenishment" };
    let insert = Query::insert()
        .into_table("invoices")
        .columns([
            "invoice_id",
            "tenant",
            "customer_id",
            "purpose",
            "purchase_id",
            "amount",
            "currency",
            "provider",
            "provider_reference",
            "url",
            "status",
            "created_at",
        ])
        .values_panic([
            invoice.id.into(),
            tenant.into(),
            invoice.customer_id.into(),
            purpose.into(),
            invoice.purchase_id.into(),
            invoice.amount.into(),
            invoice.currency.as_str().into(),
            invoice.provider.as_str().into(),
            invoice.reference.into(),
            invoice.url.into(),
            "pending".into(),
            now.into(),
        ])
        .on_conflict(sea_orm::sea_query::OnConflict::column("invoice_id").do_nothing().to_owned())
        .to_owned();
    tx.execute(&insert).await.map(|_| ())
}

async fn replenish(
    tx: &DatabaseTransaction,
    tenant: &str,
    command: &ReplenishBalance,
    now: DateTime<Utc>,
) -> Result<Outcome<serde_json::Value>, DbErr> {
    let invoice = NewInvoice {
        id: command.invoice_id,
        customer_id: command.user_id,
        purchase_id: None,
        amount: command.amount,
        currency: command.currency,
        reference: &command.provider_reference,
        url: &command.url,
        provider: command.option,
    };
    record_invoice(tx, tenant, &invoice, now).await?;
    Ok(Outcome::Done(json!({ "invoiceId": command.invoice_id, "url": command.url })))
}

/// Records a provider's invoice for a purchase that is still to pay, of its whole amount.
async fn invoice_purchase(
    tx: &DatabaseTransaction,
    tenant: &str,
    command: &InvoicePurchase,
    now: DateTime<Utc>,
) -> Result<Outcome<serde_json::Value>, DbErr> {
    let Some(purchase) = find(tx, tenant, command.user_id, command.purchase_id).await? else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no purchase {}", command.purchase_id))));
    };
    if purchase.status != "pending" {
        return Ok(Outcome::Refused(Refusal::conflict(format!("the purchase is {}", purchase.status))));
    }
    // At least the purchase's amount: a provider that takes whole units only is invoiced the
    // amount rounded up to one.
    if command.amount < purchase.amount || purchase.currency != command.currency {
        return Ok(Outcome::Refused(Refusal::invalid("the invoice does not cover the purchase")));
    }
    let invoice = NewInvoice {
        id: command.invoice_id,
        customer_id: command.user_id,
        purchase_id: Some(command.purchase_id),
        amount: command.amount,
        currency: command.currency,
        reference: &command.provider_reference,
        url: &command.url,
        provider: command.option,
    };
    record_invoice(tx, tenant, &invoice, now).await?;
    let option = command.option.as_str();
    Ok(Outcome::Done(json!({ "option": option, "invoiceId": command.invoice_id, "url": command.url })))
}

/// Settles an invoice the provider confirmed (or failed): the wallet is credited once.
async fn settle(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    command: &SettleProviderPayment,
    now: DateTime<Utc>,
) -> Result<Outcome<serde_json::Value>, DbErr> {
    let tenant = cause.tenant.as_str();
    let mut query = Query::select()
        .columns(["customer_id", "amount", "currency", "provider_reference", "status", "purchase_id"])
        .from("invoices")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("invoice_id").eq(command.invoice_id))
        .to_owned();
    readside::columns::for_update(tx, &mut query);
    let Some(row) = tx.query_one(&query).await? else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no invoice {}", command.invoice_id))));
    };
    let (customer_id, amount): (Uuid, i64) = (row.try_get("", "customer_id")?, row.try_get("", "amount")?);
    let (currency, reference, status): (String, String, String) =
        (row.try_get("", "currency")?, row.try_get("", "provider_reference")?, row.try_get("", "status")?);
    if status != "pending" {
        // Settled before (a second callback, a poll after the callback): nothing more to do.
        return Ok(Outcome::Done(json!({ "status": status, "amount": amount })));
    }
    if reference != command.provider_reference {
        tracing::warn!(invoice = %command.invoice_id, "a settlement names another provider reference; refused");
        let refusal = Refusal::conflict("the provider's reference is not this invoice's");
        return Ok(Outcome::Refused(refusal));
    }
    let currency = Currency::new(&currency).map_err(|e| DbErr::Type(format!("invoices.currency: {e}")))?;
    let purchase_id: Option<Uuid> = row.try_get("", "purchase_id")?;
    let confirmed = command.status == InvoiceStatus::Success;
    if confirmed && (command.amount < amount || command.currency != currency) {
        // Less than invoiced, or in another currency: not settled either way, but kept pending
        // and logged for an operator, since the provider did take money.
        tracing::warn!(
            invoice = %command.invoice_id, expected = amount, paid = command.amount, currency = %command.currency,
            "a provider confirmed a payment that does not match its invoice; left pending for review"
        );
        return Ok(Outcome::Done(json!({ "status": "pending", "amount": amount })));
    }
    if command.status == InvoiceStatus::Pending {
        return Ok(Outcome::Done(json!({ "status": "pending", "amount": amount })));
    }
    let paid = confirmed;
    match (purchase_id, paid) {
        (Some(purchase_id), true) => {
            return settle_purchase(tx, cause, command.invoice_id, purchase_id, customer_id, command.option, now).await;
        }
        // The provider says the payment failed: the purchase stays to pay, by any option.
        (Some(_), false) => {
            let failed = Query::update()
                .table("invoices")
                .value("status", "error")
                .value("settled_at", now)
                .and_where(Expr::col("tenant").eq(tenant))
                .and_where(Expr::col("invoice_id").eq(command.invoice_id))
                .to_owned();
            tx.execute(&failed).await?;
            return Ok(Outcome::Done(json!({ "status": "error", "amount": amount })));
        }
        (None, _) => {}
    }
    let outcome = if paid {
        let posting = Posting {
            action: WalletAction::Credit,
            amount_cents: amount,
            currency,
            description: format!("top-up through {} ({reference})", command.option.as_str()),
            source: EntrySource::Replenishment,
            idempotency_key: format!("invoice:{}", command.invoice_id),
            reverses: None,
        };
        if let Outcome::Refused(refusal) = wallets::post(tx, cause, customer_id, &posting).await? {
            tracing::warn!(invoice = %command.invoice_id, reason = %refusal.message, "a confirmed top-up could not be credited; left pending");
            return Ok(Outcome::Refused(refusal));
        }
        "success"
    } else {
        "error"
    };
    let update = Query::update()
        .table("invoices")
        .value("status", outcome)
        .value("settled_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("invoice_id").eq(command.invoice_id))
        .to_owned();
    tx.execute(&update).await?;
    let told = if paid { schemas::payments::Outcome::Success } else { schemas::payments::Outcome::Fail };
    let envelope = Envelope::new(cause.tenant.clone(), SOURCE, ReplenishmentStatus { status: told, amount, currency })
        .caused_by(cause)
        .with_subject(customer_id.to_string());
    let subject = subjects::user_channel(&cause.tenant, customer_id, Channel::Replenishment);
    outbox::enqueue_encoded(tx, &[Outgoing::new(&envelope, Destination::Realtime { subject })]).await?;
    Ok(Outcome::Done(json!({ "status": outcome, "amount": amount })))
}

/// Settles a provider's invoice for a purchase: the purchase is paid (or not), the app told.
async fn settle_purchase(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    invoice_id: Uuid,
    purchase_id: Uuid,
    customer_id: Uuid,
    option: PaymentOption,
    now: DateTime<Utc>,
) -> Result<Outcome<serde_json::Value>, DbErr> {
    let tenant = cause.tenant.as_str();
    // Locked: a payment from the balance, or another invoice of the same purchase, waits here.
    let mut query = select(tenant, customer_id).and_where(Expr::col("purchase_id").eq(purchase_id)).to_owned();
    readside::columns::for_update(tx, &mut query);
    let Some(purchase) = tx.query_one(&query).await?.map(|row| purchase_of(&row)).transpose()? else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no purchase {purchase_id}"))));
    };
    if purchase.status == "pending" {
        mark_paid(tx, tenant, purchase_id, option.as_str(), now).await?;
    } else {
        // Paid twice (from the balance, or another invoice, meanwhile): what the provider
        // collected is the customer's, kept as balance rather than lost.
        tracing::warn!(purchase = %purchase_id, "a purchase paid again through a provider; the amount goes to the balance");
        let posting = Posting {
            action: WalletAction::Credit,
            amount_cents: purchase.amount,
            currency: purchase.currency,
            description: format!("provider payment of the already paid purchase {purchase_id}"),
            source: EntrySource::Replenishment,
            idempotency_key: format!("invoice:{invoice_id}"),
            reverses: None,
        };
        if let Outcome::Refused(refusal) = wallets::post(tx, cause, customer_id, &posting).await? {
            // Nothing written yet: the invoice stays pending, for the operator to look at.
            tracing::warn!(invoice = %invoice_id, reason = %refusal.message, "a second payment could not go to the balance");
            return Ok(Outcome::Refused(refusal));
        }
    }
    let invoice = Query::update()
        .table("invoices")
        .value("status", "success")
        .value("settled_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("invoice_id").eq(invoice_id))
        .to_owned();
    tx.execute(&invoice).await?;
    tell(tx, cause, &purchase, true).await?;
    Ok(Outcome::Done(json!({ "status": "success", "amount": purchase.amount })))
}

/// Handles payments, top-ups and feedback.
pub struct Payments;

impl Handler for Payments {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database(GROUP)?;
            let message = context.message;
            let now = Utc::now();
            let outcome = match &message.data {
                AnyMessage::PayPurchase(command) => pay(tx, message, command, now).await,
                AnyMessage::LeaveFeedback(command) => feedback(tx, message.tenant.as_str(), command, now).await,
                AnyMessage::ReplenishBalance(command) => replenish(tx, message.tenant.as_str(), command, now).await,
                AnyMessage::InvoicePurchase(command) => {
                    invoice_purchase(tx, message.tenant.as_str(), command, now).await
                }
                AnyMessage::SettleProviderPayment(command) => settle(tx, message, command, now).await,
                _ => return Err(HandlerError::unhandled(message)),
            };
            outcome.map(|o| Some(o.to_reply())).map_err(|e| HandlerError::Retryable(e.to_string()))
        })
    }
}
