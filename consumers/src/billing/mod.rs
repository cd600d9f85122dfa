//! The billing consumer group (EVCare seed): integrations' usage, monthly invoices priced from it,
//! and their Paystack payments, settled exactly once.
//!
//! Layout: `usage` (`integration_usage`), `invoices` (`integration_invoices`, the pricing
//! function), `payments` (`integration_payments`).

pub mod invoices;
pub mod payments;
pub mod usage;

use crate::groups::Group;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::Utc;
use schemas::Recipient;
use schemas::billing::{InvoiceIssued, PaymentVerified};
use schemas::{AnyMessage, Money};

use readside::{Outcome, Refusal};

/// The group's name: its queues are `voltbus.billing…`.
pub const GROUP: &str = Recipient::Billing.name();
/// Where billing's events say they come from.
const SOURCE: &str = "voltbus/billing";

/// The group: its commands, one a transaction.
pub fn groups() -> Vec<Group> {
    vec![Group::handling(Recipient::Billing, Arc::new(Billing))]
}

/// Handles the billing commands.
pub struct Billing;

impl Handler for Billing {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database(GROUP)?;
            let message = context.message;
            let tenant = message.tenant.as_str();
            let now = Utc::now();
            let retryable = |e: sea_orm::DbErr| HandlerError::Retryable(e.to_string());
            let reply = match &message.data {
                AnyMessage::RecordUsage(record) => {
                    let period = usage::period_of(record.occurred_at);
                    usage::add(tx, tenant, record.integration_id, &period, &record.metric, record.quantity)
                        .await
                        .map_err(retryable)?;
                    None
                }
                AnyMessage::IssueInvoice(issue) => {
                    let (invoice, new) =
                        invoices::issue(tx, tenant, issue.integration_id, &issue.period, &issue.plan, now)
                            .await
                            .map_err(retryable)?;
                    if new {
                        let issued = InvoiceIssued {
                            invoice_id: invoice.id,
                            integration_id: invoice.integration_id,
                            period: invoice.period.clone(),
                            total: Money { amount: invoice.total, currency: invoice.currency },
                            due_at: now + chrono::Duration::days(14),
                        };
                        outbox::enqueue_event(tx, message, SOURCE, issued).await.map_err(retryable)?;
                    }
                    Some(Outcome::Done(invoice).to_reply())
                }
                AnyMessage::InitializePayment(initialize) => {
                    let payment = payments::record(tx, tenant, initialize, now).await.map_err(retryable)?;
                    Some(Outcome::Done(payment).to_reply())
                }
                AnyMessage::SettlePayment(settle) => {
                    let settled = payments::settle(tx, tenant, settle, now).await.map_err(retryable)?;
                    Some(match settled {
                        payments::Settled::Now(payment) => {
                            let verified = PaymentVerified {
                                payment_id: payment.id,
                                integration_id: payment.integration_id,
                                reference: payment.reference.clone(),
                                status: "success".into(),
                                amount: settle.amount,
                                currency: settle.currency,
                            };
                            outbox::enqueue_event(tx, message, SOURCE, verified).await.map_err(retryable)?;
                            tracing::info!(payment = %payment.id, amount = settle.amount, "integration payment settled");
                            Outcome::Done(payment).to_reply()
                        }
                        payments::Settled::Before(payment) => Outcome::Done(payment).to_reply(),
                        payments::Settled::Short(payment) => {
                            tracing::warn!(
                                payment = %payment.id,
                                confirmed = settle.amount,
                                currency = %settle.currency,
                                "Paystack confirmed less than the payment, or in another currency; not settled"
                            );
                            Outcome::Done(payment).to_reply()
                        }
                        payments::Settled::Unknown => {
                            let refusal = Refusal::not_found(format!("no payment {}", settle.payment_id));
                            Outcome::<()>::Refused(refusal).to_reply()
                        }
                    })
                }
                _ => return Err(HandlerError::unhandled(message)),
            };
            Ok(reply)
        })
    }
}
