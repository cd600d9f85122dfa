//! Customers (Levy Fleets): created, updated, blocked and unblocked by the `customers` group,
//! and by the `marketplace` group for a marketplace's users, each change announced
//! (`customer.created`, `customer.updated`, `customer.blocked`, `customer.unblocked`).
//!
//! A customer signs up in a subaccount, or belongs to the whole organisation (a marketplace's
//! users). Customers are numbered per tenant. Every statement names the tenant.

use std::future::Future;
use std::pin::Pin;

use bus::amqp::GroupTopology;
use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::customers::{
    BlockCustomer, CreateCustomer, CustomerBlocked, CustomerCreated, CustomerProfile, CustomerUnblocked,
    CustomerUpdated, RequestSignInCode, SetNotificationToken, SignIn, UnblockCustomer, UpdateCustomer,
};
use schemas::{AnyMessage, Envelope, routing};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::outcome::{Outcome, Refusal};
use crate::sequences;
use crate::sign_in::{self, SignInPolicy};

/// The group's name: its queues are `voltbus.customers…`.
pub const GROUP: &str = "customers";

const SOURCE: &str = "voltbus/customers";
const TABLE: &str = "customers";
const COLUMNS: [&str; 11] = [
    "customer_id",
    "subaccount_id",
    "number",
    "email",
    "name",
    "phone",
    "external_ref",
    "blocked",
    "block_reason",
    "created_at",
    "updated_at",
];

/// The customer commands' queues.
pub fn topology() -> GroupTopology {
    let keys = vec![
        routing::command_key_of::<CreateCustomer>(),
        routing::command_key_of::<UpdateCustomer>(),
        routing::command_key_of::<BlockCustomer>(),
        routing::command_key_of::<UnblockCustomer>(),
        routing::command_key_of::<RequestSignInCode>(),
        routing::command_key_of::<SignIn>(),
        routing::command_key_of::<SetNotificationToken>(),
    ];
    GroupTopology::commands(GROUP, keys, crate::RETRY_DELAYS.to_vec())
}

/// A customer as partners see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Customer {
    /// Customer id.
    pub id: Uuid,
    /// The subaccount they signed up in; none: the whole organisation's.
    pub subaccount_id: Option<Uuid>,
    /// Sequential number, per organisation.
    pub customer_number: u64,
    /// E-mail, name and phone.
    #[serde(flatten)]
    pub profile: CustomerProfile,
    /// The id a partner knows them by (a marketplace's user).
    pub external_ref: Option<String>,
    /// Blocked from riding.
    pub blocked: bool,
    /// Why, while blocked.
    pub block_reason: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// What the customer list is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only these subaccounts' customers and the organisation's own; `None`: all.
    pub subaccounts: Option<Vec<Uuid>>,
    /// This e-mail, any case.
    pub email: Option<String>,
    /// Blocked or not.
    pub blocked: Option<bool>,
}

fn from_row(row: &QueryResult) -> Result<Customer, DbErr> {
    let number: i64 = row.try_get("", "number")?;
    Ok(Customer {
        id: row.try_get("", "customer_id")?,
        subaccount_id: row.try_get("", "subaccount_id")?,
        customer_number: u64::try_from(number).unwrap_or_default(),
        profile: CustomerProfile {
            email: row.try_get("", "email")?,
            name: row.try_get("", "name")?,
            phone: row.try_get("", "phone")?,
        },
        external_ref: row.try_get("", "external_ref")?,
        blocked: row.try_get("", "blocked")?,
        block_reason: row.try_get("", "block_reason")?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

fn select(tenant: &str) -> SelectStatement {
    Query::select().columns(COLUMNS).from(TABLE).and_where(Expr::col("tenant").eq(tenant)).to_owned()
}

/// Customer `id` of `tenant`.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<Customer>, DbErr> {
    let query = select(tenant).and_where(Expr::col("customer_id").eq(id)).to_owned();
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// Customer `id` of `tenant`, locked until the transaction ends (PostgreSQL; SQLite writes one
/// transaction at a time anyway).
pub(crate) async fn find_locked(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<Customer>, DbErr> {
    let mut query = select(tenant).and_where(Expr::col("customer_id").eq(id)).to_owned();
    crate::database::for_update(db, &mut query);
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// One page of `tenant`'s customers that pass `filter`, oldest first.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    filter: &Filter,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Customer>, u64), DbErr> {
    let mut query = select(tenant);
    if let Some(subaccounts) = &filter.subaccounts {
        query.and_where(
            Expr::col("subaccount_id").is_null().or(Expr::col("subaccount_id").is_in(subaccounts.iter().copied())),
        );
    }
    if let Some(email) = &filter.email {
        query.and_where(Expr::col("email_search").eq(email.to_lowercase()));
    }
    if let Some(blocked) = filter.blocked {
        query.and_where(Expr::col("blocked").eq(blocked));
    }
    query.order_by("number", Order::Asc);
    let (rows, total) = crate::pages::page_of(db, &query, offset, limit).await?;
    Ok((rows.iter().map(from_row).collect::<Result<_, _>>()?, total))
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
    let update = Query::update()
        .table(TABLE)
        .value("email", customer.profile.email.clone())
        .value("email_search", customer.profile.email.as_deref().map(str::to_lowercase))
        .value("name", customer.profile.name.clone())
        .value("phone", customer.profile.phone.clone())
        .value("updated_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("customer_id").eq(id))
        .to_owned();
    tx.execute(&update).await?;
    let event = CustomerUpdated {
        customer_id: id,
        profile: customer.profile.clone(),
        changed_fields: changed,
        subaccount_id: customer.subaccount_id,
    };
    outbox::enqueue_event(tx, cause, SOURCE, event).await?;
    Ok(Outcome::Done(customer))
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
