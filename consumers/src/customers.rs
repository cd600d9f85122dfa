//! Customers (Levy Fleets): created, updated, blocked and unblocked by the `customers` group,
//! and by the `marketplace` group for a marketplace's users, each change announced
//! (`customer.created`, `customer.updated`, `customer.blocked`, `customer.unblocked`).
//!
//! A customer signs up in a subaccount, or belongs to the whole organisation (a marketplace's
//! users). Customers are numbered per tenant. Every statement names the tenant.

use crate::groups::Group;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, Utc};
use schemas::Recipient;
use schemas::customers::{
    CreateCustomer, CustomerBlocked, CustomerCreated, CustomerProfile, CustomerUnblocked, CustomerUpdated,
};
use schemas::{AnyMessage, Envelope};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use serde::Serialize;
use uuid::Uuid;

use crate::sequences;
use crate::sign_in::{self, SignInPolicy};
pub(crate) use readside::customers::{Customer, TABLE, find, find_locked};
use readside::{Outcome, Refusal};

/// The group's name: its queues are `voltbus.customers…`.
pub const GROUP: &str = Recipient::Customers.name();

const SOURCE: &str = "voltbus/customers";

/// The group: its commands, one a transaction.
pub fn groups(sign_in: SignInPolicy) -> Vec<Group> {
    vec![Group::handling(Recipient::Customers, Arc::new(Customers::new(sign_in)))]
}

/// Stores a new customer numbered next, and announces it. `None` if the id is taken (a
/// concurrent create of the same customer), in which case nothing is written.
pub(crate) async fn create(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    create: &CreateCustomer,
    now: DateTime<Utc>,
) -> Result<Option<Customer>, DbErr> {
    let tenant = cause.tenant.as_str();
    let number = sequences::next(tx, tenant, "customer").await?;
    let profile = &create.profile;
    let insert = Query::insert()
        .into_table(TABLE)
        .columns([
            "customer_id",
            "tenant",
            "subaccount_id",
            "number",
            "email",
            "email_search",
            "name",
            "phone",
            "external_ref",
            "payments_collected_by",
            "blocked",
            "created_at",
            "updated_at",
        ])
        .values_panic([
            create.customer_id.into(),
            tenant.into(),
            create.subaccount_id.into(),
            number.into(),
            profile.email.clone().into(),
            profile.email.as_deref().map(str::to_lowercase).into(),
            profile.name.clone().into(),
            profile.phone.clone().into(),
            create.external_ref.clone().into(),
            create.payments_collected_by.clone().into(),
            false.into(),
            now.into(),
            now.into(),
        ])
        .on_conflict(OnConflict::column("customer_id").do_nothing().to_owned())
        .to_owned();
    if tx.execute(&insert).await?.rows_affected() == 0 {
        return Ok(None);
    }
    let customer = Customer {
        id: create.customer_id,
        subaccount_id: create.subaccount_id,
        customer_number: u64::try_from(number).unwrap_or_default(),
        profile: profile.clone(),
        external_ref: create.external_ref.clone(),
        payments_collected_by: create.payments_collected_by.clone(),
        blocked: false,
        block_reason: None,
        created_at: now,
        updated_at: now,
    };
    let event = CustomerCreated {
        customer_id: customer.id,
        customer_number: customer.customer_number,
        profile: customer.profile.clone(),
        subaccount_id: customer.subaccount_id,
    };
    outbox::enqueue_event(tx, cause, SOURCE, event).await?;
    Ok(Some(customer))
}

/// Applies `changes` (its `Some` fields) to customer `id`, and announces what changed.
pub(crate) async fn update(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    id: Uuid,
    changes: &CustomerProfile,
    now: DateTime<Utc>,
) -> Result<Outcome<Customer>, DbErr> {
    let tenant = cause.tenant.as_str();
    let Some(mut customer) = find_locked(tx, tenant, id).await? else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no customer {id}"))));
    };
    let mut changed = Vec::new();
    let profile = &mut customer.profile;
    for (field, current, new) in [
        ("email", &mut profile.email, &changes.email),
        ("name", &mut profile.name, &changes.name),
        ("phone", &mut profile.phone, &changes.phone),
    ] {
        if new.is_some() && new != current {
            current.clone_from(new);
            changed.push(field.to_owned());
        }
    }
    if changed.is_empty() {
        return Ok(Outcome::Done(customer));
    }
    customer.updated_at = now;
    write_profile(tx, cause, &customer, changed).await?;
    Ok(Outcome::Done(customer))
}

/// Stores `customer`'s profile as it is now and announces the `changed` fields.
async fn write_profile(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    customer: &Customer,
    changed: Vec<String>,
) -> Result<(), DbErr> {
    let update = Query::update()
        .table(TABLE)
        .value("email", customer.profile.email.clone())
        .value("email_search", customer.profile.email.as_deref().map(str::to_lowercase))
        .value("name", customer.profile.name.clone())
        .value("phone", customer.profile.phone.clone())
        .value("updated_at", customer.updated_at)
        .and_where(Expr::col("tenant").eq(cause.tenant.as_str()))
        .and_where(Expr::col("customer_id").eq(customer.id))
        .to_owned();
    tx.execute(&update).await?;
    let event = CustomerUpdated {
        customer_id: customer.id,
        profile: customer.profile.clone(),
        changed_fields: changed,
        subaccount_id: customer.subaccount_id,
    };
    outbox::enqueue_event(tx, cause, SOURCE, event).await
}

/// Erases customer `id`'s personal data (the money history stays: wallet entries, rides and
/// purchases name the customer by id only) and blocks them for `reason`, announcing both.
pub(crate) async fn erase(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Outcome<Customer>, DbErr> {
    let tenant = cause.tenant.as_str();
    let Some(mut customer) = find_locked(tx, tenant, id).await? else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no customer {id}"))));
    };
    let profile = &mut customer.profile;
    let changed: Vec<String> =
        [("email", profile.email.take()), ("name", profile.name.take()), ("phone", profile.phone.take())]
            .into_iter()
            .filter_map(|(field, erased)| erased.map(|_| field.to_owned()))
            .collect();
    if !changed.is_empty() {
        customer.updated_at = now;
        write_profile(tx, cause, &customer, changed).await?;
    }
    if customer.blocked {
        return Ok(Outcome::Done(customer));
    }
    set_blocked(tx, cause, id, true, reason, now).await
}

/// Blocks (`blocked`) or unblocks customer `id` for `reason`, and announces it.
async fn set_blocked(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    id: Uuid,
    blocked: bool,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Outcome<Customer>, DbErr> {
    let tenant = cause.tenant.as_str();
    let Some(mut customer) = find_locked(tx, tenant, id).await? else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no customer {id}"))));
    };
    if customer.blocked == blocked {
        let state = if blocked { "already blocked" } else { "not blocked" };
        return Ok(Outcome::Refused(Refusal::conflict(format!("customer {id} is {state}"))));
    }
    customer.blocked = blocked;
    customer.block_reason = blocked.then(|| reason.to_owned());
    customer.updated_at = now;
    let update = Query::update()
        .table(TABLE)
        .value("blocked", blocked)
        .value("block_reason", customer.block_reason.clone())
        .value("updated_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("customer_id").eq(id))
        .to_owned();
    tx.execute(&update).await?;
    let (reason, subaccount_id) = (reason.to_owned(), customer.subaccount_id);
    if blocked {
        outbox::enqueue_event(tx, cause, SOURCE, CustomerBlocked { customer_id: id, reason, subaccount_id }).await?;
    } else {
        outbox::enqueue_event(tx, cause, SOURCE, CustomerUnblocked { customer_id: id, reason, subaccount_id }).await?;
    }
    Ok(Outcome::Done(customer))
}

/// Handles the customer commands, mobile sign-in included.
#[derive(Default)]
pub struct Customers {
    sign_in: SignInPolicy,
}

impl Customers {
    /// Customers whose mobile sign-in follows `sign_in`.
    pub fn new(sign_in: SignInPolicy) -> Self {
        Self { sign_in }
    }
}

impl Handler for Customers {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database(GROUP)?;
            let message = context.message;
            let now = Utc::now();
            let outcome = match &message.data {
                AnyMessage::CreateCustomer(command) => match create(tx, message, command, now).await {
                    Ok(Some(customer)) => Ok(Outcome::Done(customer)),
                    Ok(None) => {
                        Ok(Outcome::Refused(Refusal::conflict(format!("customer id {} is taken", command.customer_id))))
                    }
                    Err(error) => Err(error),
                },
                AnyMessage::UpdateCustomer(command) => {
                    update(tx, message, command.customer_id, &command.changes, now).await
                }
                AnyMessage::BlockCustomer(command) => {
                    set_blocked(tx, message, command.customer_id, true, &command.reason, now).await
                }
                AnyMessage::UnblockCustomer(command) => {
                    set_blocked(tx, message, command.customer_id, false, &command.reason, now).await
                }
                AnyMessage::RequestSignInCode(command) => {
                    let tenant = message.tenant.as_str();
                    let (phone, hash) = (command.phone.as_str(), command.code_hash.as_str());
                    let requested =
                        sign_in::request_code(tx, tenant, phone, hash, command.expires_at, self.sign_in, now);
                    return reply(requested.await);
                }
                AnyMessage::SignIn(command) => {
                    return reply(sign_in::sign_in(tx, message, command, self.sign_in, now).await);
                }
                AnyMessage::SetNotificationToken(command) => {
                    let tenant = message.tenant.as_str();
                    let set = sign_in::set_notification_token(tx, tenant, command.customer_id, &command.token, now);
                    return reply(set.await);
                }
                _ => return Err(HandlerError::unhandled(message)),
            };
            reply(outcome)
        })
    }
}

/// A command's outcome as its reply; a database error is worth another try.
fn reply<T: Serialize>(outcome: Result<Outcome<T>, DbErr>) -> Result<Reply, HandlerError> {
    outcome.map(|o| Some(o.to_reply())).map_err(|error| HandlerError::Retryable(error.to_string()))
}
