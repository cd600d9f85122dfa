//! Marketplace partners in (Etvas seed): their users and purchases mapped to ours, each change
//! announced on the bus.
//!
//! The `marketplace` group takes `user.create`, `user.update`, `product.purchase`,
//! `product.cancel`, `product.suspend` and `product.resume`, and answers each with the ids the
//! partner is to keep ([`Mapping`]): users are numbered `u-000001`, purchases `p-000001`, per
//! tenant. A retried partner event is the same command (its id derives from the event's), so the
//! inbox answers it again without a second effect.
//!
//! Layout: `users` and `purchases` (the tables).

pub mod purchases;
pub mod users;

use crate::groups::Group;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, Utc};
use schemas::Recipient;
use schemas::customers::{CreateCustomer, CustomerProfile};
use schemas::marketplace::{
    ETVAS, IdPair, MarketplacePurchaseChanged, MarketplaceUserChanged, PartnerEvent, PartnerProfile, PartnerUser,
    ProductCancel, ProductData, ProductPurchase, ProductResume, ProductSuspend, PurchaseChange, UserChange, UserCreate,
    UserData, UserDelete, UserUpdate,
};
use schemas::{AnyMessage, Envelope};
use sea_orm::{DatabaseTransaction, DbErr};

use crate::{customers, sequences};
use purchases::Standing;
use readside::{Outcome, Refusal};
use users::User;

pub use readside::marketplace::Mapping;

/// The group's name: its queues are `voltbus.marketplace…`.
pub const GROUP: &str = Recipient::Marketplace.name();

const SOURCE: &str = "voltbus/marketplace";

/// The group: its commands, one a transaction.
pub fn groups() -> Vec<Group> {
    vec![Group::handling(Recipient::Marketplace, Arc::new(Marketplace))]
}

/// Handles the marketplace commands.
pub struct Marketplace;

impl Handler for Marketplace {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database("marketplace")?;
            let message = context.message;
            let now = Utc::now();
            let outcome = match &message.data {
                AnyMessage::UserCreate(UserCreate(event)) => create_user(tx, message, event, now).await,
                AnyMessage::UserUpdate(UserUpdate(event)) => update_user(tx, message, event, now).await,
                AnyMessage::UserDelete(event) => delete_user(tx, message, event, now).await,
                AnyMessage::ProductPurchase(ProductPurchase(event)) => {
                    change_purchase(tx, message, event, PurchaseChange::Purchased, now).await
                }
                AnyMessage::ProductCancel(ProductCancel(event)) => {
                    change_purchase(tx, message, event, PurchaseChange::Canceled, now).await
                }
                AnyMessage::ProductSuspend(ProductSuspend(event)) => {
                    change_purchase(tx, message, event, PurchaseChange::Suspended, now).await
                }
                AnyMessage::ProductResume(ProductResume(event)) => {
                    change_purchase(tx, message, event, PurchaseChange::Resumed, now).await
                }
                _ => return Err(HandlerError::unhandled(message)),
            };
            outcome.map(|o| Some(o.to_reply())).map_err(|error| HandlerError::Retryable(error.to_string()))
        })
    }
}

fn user_pair(event_user: &PartnerUser, user: &User) -> IdPair {
    IdPair { id: event_user.id, partner_id: user.partner_id() }
}

async fn create_user(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    event: &PartnerEvent<UserData>,
    now: DateTime<Utc>,
) -> Result<Outcome<Mapping>, DbErr> {
    let tenant = message.tenant.as_str();
    let user_id = event.user.id;
    // A user the marketplace creates again keeps the id it was given: the partner may already
    // have stored it.
    if let Some(user) = users::find(tx, tenant, ETVAS, user_id).await? {
        return Ok(Outcome::Done(Mapping { user: user_pair(&event.user, &user), product: None }));
    }
    let number = sequences::next(tx, tenant, "marketplace_user").await?;
    let user = match users::insert(tx, tenant, ETVAS, user_id, number, &event.data, now).await? {
        Some(user) => {
            announce_user(tx, message, &user, user_pair(&event.user, &user), UserChange::Created).await?;
            // The user is one of the organisation's customers from now on, in no one subaccount.
            let customer = CreateCustomer {
                customer_id: user.customer_id,
                subaccount_id: None,
                profile: customer_profile(&user.profile),
                external_ref: Some(format!("{ETVAS}:{user_id}")),
                // The seed: payments of users registered through Etvas are not ours to collect.
                payments_collected_by: Some(ETVAS.into()),
            };
            customers::create(tx, message, &customer, now).await?;
            user
        }
        // Mapped by a concurrent command since the read above: answer with its mapping.
        None => users::find(tx, tenant, ETVAS, user_id)
            .await?
            .ok_or_else(|| DbErr::Custom(format!("marketplace user {user_id} neither inserted nor found")))?,
    };
    Ok(Outcome::Done(Mapping { user: user_pair(&event.user, &user), product: None }))
}

async fn update_user(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    event: &PartnerEvent<UserData>,
    now: DateTime<Utc>,
) -> Result<Outcome<Mapping>, DbErr> {
    let tenant = message.tenant.as_str();
    if let Err(refusal) = mapped_user(tx, tenant, &event.user).await? {
        return Ok(Outcome::Refused(refusal));
    }
    let user = users::update(tx, tenant, ETVAS, event.user.id, &event.data, now)
        .await?
        .ok_or_else(|| DbErr::Custom(format!("marketplace user {} vanished", event.user.id)))?;
    let pair = user_pair(&event.user, &user);
    announce_user(tx, message, &user, pair.clone(), UserChange::Updated).await?;
    // A user mapped before customers existed has none: the update leaves it at that.
    if let Outcome::Refused(refusal) =
        customers::update(tx, message, user.customer_id, &customer_profile(&user.profile), now).await?
    {
        tracing::debug!(customer = %user.customer_id, reason = %refusal.message, "marketplace user has no customer");
    }
    Ok(Outcome::Done(Mapping { user: pair, product: None }))
}

/// Erases the user's data, as a marketplace's user, and as a customer (blocked, their money history
/// kept: wallet entries, rides and purchases name them by id only).
async fn delete_user(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    event: &UserDelete,
    now: DateTime<Utc>,
) -> Result<Outcome<Mapping>, DbErr> {
    let tenant = message.tenant.as_str();
    if let Err(refusal) = mapped_user(tx, tenant, &event.user).await? {
        return Ok(Outcome::Refused(refusal));
    }
    let user = users::erase(tx, tenant, ETVAS, event.user.id, now)
        .await?
        .ok_or_else(|| DbErr::Custom(format!("marketplace user {} vanished", event.user.id)))?;
    let pair = user_pair(&event.user, &user);
    announce_user(tx, message, &user, pair.clone(), UserChange::Deleted).await?;
    let reason = "erased at the marketplace's request (user.delete)";
    if let Outcome::Refused(refusal) = customers::erase(tx, message, user.customer_id, reason, now).await? {
        tracing::debug!(customer = %user.customer_id, reason = %refusal.message, "marketplace user has no customer");
    }
    Ok(Outcome::Done(Mapping { user: pair, product: None }))
}

/// The customer profile a marketplace's user profile amounts to.
fn customer_profile(profile: &PartnerProfile) -> CustomerProfile {
    let name = [profile.first_name.as_deref(), profile.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>();
    CustomerProfile {
        email: profile.email.clone(),
        name: (!name.is_empty()).then(|| name.join(" ")),
        phone: profile.phone.clone(),
    }
}

/// The user an event names, if mapped and named consistently.
async fn mapped_user(
    tx: &DatabaseTransaction,
    tenant: &str,
    named: &PartnerUser,
) -> Result<Result<User, Refusal>, DbErr> {
    let Some(user) = users::find(tx, tenant, ETVAS, named.id).await? else {
        return Ok(Err(Refusal::not_found(format!(
            "user {} is unknown here: send user.create for them first",
            named.id
        ))));
    };
    if let Some(given) = named.partner_id.as_deref().filter(|given| *given != user.partner_id()) {
        return Ok(Err(Refusal::conflict(format!("user {} is {} here, not {given}", named.id, user.partner_id()))));
    }
    Ok(Ok(user))
}

/// Where a purchase goes on `change` from `current`: `None` when it is there already.
fn next_standing(change: PurchaseChange, current: Standing) -> Result<Option<Standing>, &'static str> {
    use PurchaseChange as Change;
    match (change, current) {
        (Change::Purchased | Change::Resumed, Standing::Active)
        | (Change::Canceled, Standing::Canceled)
        | (Change::Suspended, Standing::Suspended) => Ok(None),
        (Change::Purchased, _) | (Change::Resumed, Standing::Suspended) => Ok(Some(Standing::Active)),
        (Change::Canceled, _) => Ok(Some(Standing::Canceled)),
        (Change::Suspended, Standing::Active) => Ok(Some(Standing::Suspended)),
        (Change::Suspended | Change::Resumed, Standing::Canceled) => {
            Err("the purchase was canceled; a new product.purchase starts it again")
        }
    }
}

async fn change_purchase(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    event: &PartnerEvent<ProductData>,
    change: PurchaseChange,
    now: DateTime<Utc>,
) -> Result<Outcome<Mapping>, DbErr> {
    let tenant = message.tenant.as_str();
    let user = match mapped_user(tx, tenant, &event.user).await? {
        Ok(user) => user,
        Err(refusal) => return Ok(Outcome::Refused(refusal)),
    };
    let product = &event.data.product;
    let (user_id, product_id) = (event.user.id, product.id);
    let user = user_pair(&event.user, &user);
    let answer = |purchase: &purchases::Purchase| {
        let product = IdPair { id: product_id, partner_id: purchase.partner_id() };
        Outcome::Done(Mapping { user: user.clone(), product: Some(product) })
    };
    let changed = match purchases::find(tx, tenant, ETVAS, user_id, product_id).await? {
        Some(current) => {
            if let Some(given) = product.partner_id.as_deref().filter(|given| *given != current.partner_id()) {
                let why = format!("product {product_id} of this user is {} here, not {given}", current.partner_id());
                return Ok(Outcome::Refused(Refusal::conflict(why)));
            }
            match next_standing(change, current.standing) {
                Err(why) => return Ok(Outcome::Refused(Refusal::conflict(why))),
                Ok(None) => return Ok(answer(&current)),
                Ok(Some(standing)) => {
                    purchases::set_standing(tx, tenant, ETVAS, user_id, product, standing, now).await?
                }
            }
        }
        None if change == PurchaseChange::Purchased => {
            let number = sequences::next(tx, tenant, "marketplace_purchase").await?;
            purchases::insert(tx, tenant, ETVAS, user_id, product, number, now).await?
        }
        None => {
            let why = format!("user {user_id} has no purchase of product {product_id}");
            return Ok(Outcome::Refused(Refusal::not_found(why)));
        }
    };
    let Some(purchase) = changed else {
        // A concurrent command recorded the purchase since the read above: answer with it.
        let purchase = purchases::find(tx, tenant, ETVAS, user_id, product_id)
            .await?
            .ok_or_else(|| DbErr::Custom(format!("purchase of {product_id} by {user_id} neither written nor found")))?;
        return Ok(answer(&purchase));
    };
    let announced = MarketplacePurchaseChanged {
        marketplace: ETVAS.into(),
        user: user.clone(),
        product: IdPair { id: product_id, partner_id: purchase.partner_id() },
        name: purchase.product.name.clone(),
        price: purchase.product.price,
        currency: purchase.product.currency,
        price_type: purchase.product.price_type.clone(),
        price_interval: purchase.product.price_interval.clone(),
        change,
    };
    outbox::enqueue_event(tx, message, SOURCE, announced).await?;
    Ok(answer(&purchase))
}

async fn announce_user(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    user: &User,
    pair: IdPair,
    change: UserChange,
) -> Result<(), DbErr> {
    let event = MarketplaceUserChanged {
        marketplace: ETVAS.into(),
        user: pair,
        customer_id: user.customer_id,
        profile: user.profile.clone(),
        change,
    };
    outbox::enqueue_event(tx, cause, SOURCE, event).await
}
