//! The customer and wallet routes (`customers:read|write`, `wallet:read|write`): customers listed,
//! searched by e-mail, created, changed, blocked and unblocked; a customer's wallet read and
//! credited or debited, entries refunded; each change a command answered by the `customers` and
//! `wallets` consumers. A customer of a subaccount is seen by requests acting on it; the
//! organisation's own customers (a marketplace's users) by every request of the organisation.

use http::StatusCode;
use readside::customers::{self, Customer, Filter};
use readside::wallets::{self, Entry, RECENT_ENTRIES, Wallet};
use schemars::JsonSchema;
use schemas::Currency;
use schemas::customers::{BlockCustomer, CreateCustomer, CustomerProfile, UnblockCustomer, UpdateCustomer};
use schemas::wallets::{EntrySource, PostWalletEntry, RefundWalletEntry, SetWalletOverdraft, WalletAction};
use serde::Deserialize;
use uuid::Uuid;

use crate::edge::body::parse_body;
use crate::edge::commands::command;
use crate::edge::envelope::db_error;
use crate::edge::envelope::{Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::routes::Call;
use crate::edge::query::page_and_filters;
use crate::edge::router::QueryFilter;

/// Largest single wallet entry: a million major units.
const MAX_ENTRY_CENTS: i64 = 100_000_000;

/// Filters of the customer list.
pub(crate) const FILTERS: &[QueryFilter] = &[
    QueryFilter { name: "email", values: &[], description: "Customers with this e-mail, any case." },
    QueryFilter { name: "status", values: &["active", "blocked"], description: "Blocked customers, or the others." },
];

/// `POST /customers`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCustomer {
    /// The subaccount they sign up in; defaults to the one the request acts on (none: the
    /// organisation's own customer, for organisation-wide keys).
    subaccount_id: Option<Uuid>,
    /// E-mail.
    #[schemars(length(max = 254))]
    email: Option<String>,
    /// Full name.
    #[schemars(length(max = 200))]
    name: Option<String>,
    /// Phone, international format (`+5511987654321`).
    phone: Option<String>,
    /// The id the partner knows them by.
    #[schemars(length(max = 200))]
    external_ref: Option<String>,
}

/// `PATCH /customers/{id}`: what is given changes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomerChanges {
    /// E-mail.
    #[schemars(length(max = 254))]
    email: Option<String>,
    /// Full name.
    #[schemars(length(max = 200))]
    name: Option<String>,
    /// Phone, international format.
    phone: Option<String>,
}

/// `POST /customers/{id}/block`, `/unblock`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reason {
    /// Why (1 to 500 characters).
    #[schemars(length(min = 1, max = 500))]
    reason: String,
}

/// `POST /customers/{id}/wallet`: the seed's `{action, amount_cents, description}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WalletPosting {
    /// `credit` or `debit`.
    action: WalletAction,
    /// Positive, minor units.
    #[schemars(range(min = 1))]
    amount_cents: i64,
    /// Shown to the customer (1 to 200 characters).
    #[schemars(length(min = 1, max = 200))]
    description: String,
    /// The wallet's currency; needed only for its first entry when its subaccount has no plan.
    currency: Option<Currency>,
}

/// `PUT /customers/{id}/wallet/overdraft`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Overdraft {
    /// How far below zero the balance may go, minor units (0: never).
    #[schemars(range(min = 0))]
    overdraft_limit_cents: i64,
}

/// Whether `text` reads as an e-mail address (`name@example.com`): the shape, not a mailbox.
pub(crate) fn is_email(text: &str) -> bool {
    text.len() <= 254
        && text.split_once('@').is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        && !text.chars().any(char::is_whitespace)
}

fn check_profile(profile: &CustomerProfile) -> Result<(), ApiError> {
    if profile.email.as_deref().is_some_and(|email| !is_email(email)) {
        return Err(ApiError::invalid("email", "email must be an address like name@example.com"));
    }
    if profile.name.as_ref().is_some_and(|n| n.trim().is_empty() || n.chars().count() > 200) {
        return Err(ApiError::invalid("name", "name must be 1 to 200 characters"));
    }
    if let Some(phone) = &profile.phone {
        let digits = phone.strip_prefix('+').unwrap_or_default();
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid("phone", "phone must be international: + and 8 to 15 digits"));
        }
    }
    Ok(())
}

/// Whether a request may see `customer`.
fn sees(call: &Call, customer: &Customer) -> bool {
    match (call.caller.fleets(), customer.subaccount_id) {
        (Some(fleets), Some(subaccount)) => fleets.contains(&subaccount),
        _ => true,
    }
}

/// Customer `{id}`, if the request may see it.
pub(crate) async fn find(api: &PartnerApi, call: &Call) -> Result<Customer, ApiError> {
    let id = call.id("id")?;
    let customer = customers::find(&api.database, call.caller.tenant.as_str(), id).await.map_err(db_error)?;
    customer.filter(|c| sees(call, c)).ok_or_else(|| {
        ApiError::not_found(format!("no customer {id}")).details(serde_json::json!({ "customer_id": id }))
    })
}

/// Customer `{id}`, if the request may change it: a customer of the whole organisation (a
/// marketplace's user) is changed only by requests that act on the whole organisation.
async fn find_to_change(api: &PartnerApi, call: &Call) -> Result<Customer, ApiError> {
    let customer = find(api, call).await?;
    if customer.subaccount_id.is_none() && call.caller.fleets().is_some() {
        return Err(ApiError::forbidden("the organisation's own customers are changed by organisation-wide keys only")
            .details(serde_json::json!({ "customer_id": customer.id })));
    }
    Ok(customer)
}

/// `GET /customers`.
pub(crate) async fn list(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let (page, values) = page_and_filters(call.query.as_deref(), FILTERS)?;
    let mut filter = Filter { subaccounts: call.caller.fleets(), ..Filter::default() };
    for (name, value) in values {
        match name {
            "email" => filter.email = Some(value),
            "status" => filter.blocked = Some(value == "blocked"),
            _ => {}
        }
    }
    let tenant = call.caller.tenant.as_str();
    let (items, total) =
        customers::list(&api.database, tenant, &filter, page.offset(), page.limit).await.map_err(db_error)?;
    Ok(Answer::list(items, page, total))
}

/// `GET /customers/{id}`.
pub(crate) async fn get(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    Ok(Answer::ok(find(api, &call).await?))
}

/// `POST /customers`.
pub(crate) async fn create(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: NewCustomer = parse_body(&call.body)?;
    let profile = CustomerProfile { email: request.email, name: request.name, phone: request.phone };
    check_profile(&profile)?;
    if request.external_ref.as_ref().is_some_and(|r| r.is_empty() || r.chars().count() > 200) {
        return Err(ApiError::invalid("external_ref", "external_ref must be 1 to 200 characters"));
    }
    let subaccount_id = request.subaccount_id.or(call.caller.subaccount);
    match (call.caller.fleets(), subaccount_id) {
        (Some(fleets), Some(subaccount)) if !fleets.contains(&subaccount) => {
            return Err(ApiError::forbidden("this key may not act on that subaccount")
                .details(serde_json::json!({ "subaccount_id": subaccount })));
        }
        (Some(_), None) => {
            return Err(ApiError::invalid("subaccount_id", "name the customer's subaccount, or X-Subaccount-Id"));
        }
        _ => {}
    }
    let create = CreateCustomer {
        customer_id: Uuid::now_v7(),
        subaccount_id,
        profile,
        external_ref: request.external_ref,
        payments_collected_by: None,
    };
    let stored: Customer = api.bus.request(&command(&call, create), api.settings.command_timeout).await?;
    Ok(Answer::with_status(StatusCode::CREATED, stored))
}

/// `PATCH /customers/{id}`.
pub(crate) async fn update(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let changes: CustomerChanges = parse_body(&call.body)?;
    let changes = CustomerProfile { email: changes.email, name: changes.name, phone: changes.phone };
    check_profile(&changes)?;
    let customer = find_to_change(api, &call).await?;
    let update = UpdateCustomer { customer_id: customer.id, changes };
    let stored: Customer = api.bus.request(&command(&call, update), api.settings.command_timeout).await?;
    Ok(Answer::ok(stored))
}

fn reason_of(call: &Call) -> Result<String, ApiError> {
    let Reason { reason } = parse_body(&call.body)?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid("reason", "reason must be 1 to 500 characters"));
    }
    Ok(reason.to_owned())
}

/// `POST /customers/{id}/block`.
pub(crate) async fn block(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    set_blocked(api, call, true).await
}

/// `POST /customers/{id}/unblock`.
pub(crate) async fn unblock(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    set_blocked(api, call, false).await
}

async fn set_blocked(api: &PartnerApi, call: Call, blocked: bool) -> Result<Answer, ApiError> {
    let reason = reason_of(&call)?;
    let customer_id = find_to_change(api, &call).await?.id;
    let timeout = api.settings.command_timeout;
    let stored: Customer = if blocked {
        api.bus.request(&command(&call, BlockCustomer { customer_id, reason }), timeout).await?
    } else {
        api.bus.request(&command(&call, UnblockCustomer { customer_id, reason }), timeout).await?
    };
    Ok(Answer::ok(stored))
}

/// `GET /customers/{id}/wallet`.
pub(crate) async fn wallet(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let customer = find(api, &call).await?;
    let tenant = call.caller.tenant.as_str();
    let wallet: Wallet = wallets::find(&api.database, tenant, customer.id, RECENT_ENTRIES).await.map_err(db_error)?;
    Ok(Answer::ok(wallet))
}

/// `POST /customers/{id}/wallet`.
pub(crate) async fn post_entry(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: WalletPosting = parse_body(&call.body)?;
    if !(1..=MAX_ENTRY_CENTS).contains(&request.amount_cents) {
        return Err(ApiError::invalid("amount_cents", format!("amount_cents must be 1 to {MAX_ENTRY_CENTS}")));
    }
    let description = request.description.trim().to_owned();
    if description.is_empty() || description.chars().count() > 200 {
        return Err(ApiError::invalid("description", "description must be 1 to 200 characters"));
    }
    let customer = find_to_change(api, &call).await?;
    let tenant = call.caller.tenant.as_str();
    // The wallet's currency, else its subaccount's plan's: a partner names it only for a first
    // entry that neither decides.
    let currency = match request.currency {
        Some(currency) => currency,
        None => {
            let wallet = wallets::currency(&api.database, tenant, customer.id).await.map_err(db_error)?;
            let plan = match (wallet, customer.subaccount_id) {
                (None, Some(subaccount)) => {
                    readside::pricing::find(&api.database, tenant, subaccount).await.map_err(db_error)?
                }
                _ => None,
            };
            wallet
                .or(plan.map(|p| p.plan.currency))
                .ok_or_else(|| ApiError::invalid("currency", "name the currency of the wallet's first entry"))?
        }
    };
    let post = PostWalletEntry {
        customer_id: customer.id,
        action: request.action,
        amount_cents: request.amount_cents,
        currency,
        description,
        source: EntrySource::Manual,
        // The command's id is the request's Idempotency-Key when it sent one: a retried call
        // names the same entry.
        idempotency_key: format!("api:{}", call.command_id),
    };
    let entry: Entry = api.bus.request(&command(&call, post), api.settings.command_timeout).await?;
    Ok(Answer::with_status(StatusCode::CREATED, entry))
}

/// `POST /customers/{id}/wallet/entries/{entry_id}/refund`.
pub(crate) async fn refund(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let reason = reason_of(&call)?;
    let customer = find_to_change(api, &call).await?;
    let refund = RefundWalletEntry { customer_id: customer.id, entry_id: call.id("entry_id")?, reason };
    let entry: Entry = api.bus.request(&command(&call, refund), api.settings.command_timeout).await?;
    Ok(Answer::with_status(StatusCode::CREATED, entry))
}

/// `PUT /customers/{id}/wallet/overdraft`.
pub(crate) async fn set_overdraft(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let Overdraft { overdraft_limit_cents } = parse_body(&call.body)?;
    if !(0..=MAX_ENTRY_CENTS).contains(&overdraft_limit_cents) {
        return Err(ApiError::invalid("overdraft_limit_cents", format!("0 to {MAX_ENTRY_CENTS}")));
    }
    let customer = find_to_change(api, &call).await?;
    let set = SetWalletOverdraft { customer_id: customer.id, overdraft_limit_cents };
    let wallet: Wallet = api.bus.request(&command(&call, set), api.settings.command_timeout).await?;
    Ok(Answer::ok(wallet))
}
