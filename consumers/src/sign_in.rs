//! Mobile sign-in (EVM seed): a code by SMS, then a session. The edge makes the code and the
//! session token and sends only their hashes; this side keeps the rules:
//!
//! - codes are given for organisations that exist and are active only;
//! - a phone may ask for `codes_per_hour` codes an hour and `codes_per_day` a day
//!   (`RATE_LIMITED` past that), so a guesser gets at most `codes_per_day × max_attempts`
//!   guesses at a six-digit code a day;
//! - only the phone's latest code counts, until it expires, is used, or has been guessed
//!   wrong `max_attempts` times (`TOO_MANY_ATTEMPTS`); a wrong guess is committed, so retrying
//!   the request cannot reset the count;
//! - the hashes are compared in constant time;
//! - the first sign-in of a phone makes it a customer of the organisation (announced as
//!   `customer.created`), whose wallet is the app's balance.

use chrono::{DateTime, Duration, Utc};
use schemas::customers::{CreateCustomer, CustomerProfile, SignIn};
use schemas::{AnyMessage, Envelope};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use subtle::ConstantTimeEq;
use uuid::Uuid;

pub use readside::sign_in::{Session, SignedIn, session};

use readside::{Outcome, Refusal, codes};

/// The limits of sign-in codes.
#[derive(Clone, Copy, Debug)]
pub struct SignInPolicy {
    /// Wrong guesses a code survives.
    pub max_attempts: u32,
    /// Codes a phone may ask for in an hour.
    pub codes_per_hour: u32,
    /// Codes a phone may ask for in a day: with `max_attempts`, the most guesses a day.
    pub codes_per_day: u32,
}

impl Default for SignInPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, codes_per_hour: 5, codes_per_day: 10 }
    }
}

/// Stores a requested code, unless the phone asked for too many this hour.
pub(crate) async fn request_code(
    tx: &DatabaseTransaction,
    tenant: &str,
    phone: &str,
    code_hash: &str,
    expires_at: DateTime<Utc>,
    policy: SignInPolicy,
    now: DateTime<Utc>,
) -> Result<Outcome<serde_json::Value>, DbErr> {
    // Anyone may sign up to an organisation's app, but only to an organisation that exists.
    let organisation = Query::select()
        .column("id")
        .from("tenants")
        .and_where(Expr::col("id").eq(tenant))
        .and_where(Expr::col("active").eq(true))
        .to_owned();
    if tx.query_one(&organisation).await?.is_none() {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no organisation {tenant}"))));
    }
    let count_since = |since: DateTime<Utc>| {
        Query::select()
            .expr(Expr::col("code_id").count())
            .from("sign_in_codes")
            .and_where(Expr::col("tenant").eq(tenant))
            .and_where(Expr::col("phone").eq(phone))
            .and_where(Expr::col("created_at").gt(since))
            .to_owned()
    };
    let mut counts = [0i64; 2];
    for (count, since) in counts.iter_mut().zip([now - Duration::hours(1), now - Duration::days(1)]) {
        if let Some(row) = tx.query_one(&count_since(since)).await? {
            *count = row.try_get_by_index(0)?;
        }
    }
    if counts[0] >= i64::from(policy.codes_per_hour) || counts[1] >= i64::from(policy.codes_per_day) {
        let refusal = Refusal::coded(codes::RATE_LIMITED, "too many codes asked for this phone; try again later");
        return Ok(Outcome::Refused(refusal));
    }
    let insert = Query::insert()
        .into_table("sign_in_codes")
        .columns(["code_id", "tenant", "phone", "code_hash", "attempts", "expires_at", "created_at"])
        .values_panic([
            Uuid::now_v7().into(),
            tenant.into(),
            phone.into(),
            code_hash.into(),
            0i32.into(),
            expires_at.into(),
            now.into(),
        ])
        .to_owned();
    tx.execute(&insert).await?;
    Ok(Outcome::Done(serde_json::json!({ "sent": true })))
}

/// Checks the code against the phone's latest one; on success opens the session, making the
/// customer on the phone's first sign-in.
pub(crate) async fn sign_in(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    command: &SignIn,
    policy: SignInPolicy,
    now: DateTime<Utc>,
) -> Result<Outcome<SignedIn>, DbErr> {
    let tenant = cause.tenant.as_str();
    let mut latest = Query::select()
        .columns(["code_id", "code_hash", "attempts", "expires_at", "used_at"])
        .from("sign_in_codes")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("phone").eq(command.phone.as_str()))
        .order_by("created_at", Order::Desc)
        .limit(1)
        .to_owned();
    readside::columns::for_update(tx, &mut latest);
    let refused = |code: &str, message: &str| Ok(Outcome::Refused(Refusal::coded(code, message)));
    let Some(row) = tx.query_one(&latest).await? else {
        return refused(codes::INVALID_CODE, "no code was asked for this phone");
    };
    let (code_id, stored): (Uuid, String) = (row.try_get("", "code_id")?, row.try_get("", "code_hash")?);
    let attempts: i32 = row.try_get("", "attempts")?;
    let expires_at: DateTime<Utc> = row.try_get("", "expires_at")?;
    let used_at: Option<DateTime<Utc>> = row.try_get("", "used_at")?;
    if used_at.is_some() || expires_at <= now {
        return refused(codes::INVALID_CODE, "the code has expired or was used; ask for a new one");
    }
    if attempts >= i32::try_from(policy.max_attempts).unwrap_or(i32::MAX) {
        return refused(codes::TOO_MANY_ATTEMPTS, "too many wrong codes; ask for a new one");
    }
    let matches: bool = stored.as_bytes().ct_eq(command.code_hash.as_bytes()).into();
    let mark = Query::update()
        .table("sign_in_codes")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("code_id").eq(code_id))
        .to_owned();
    if !matches {
        let mut wrong = mark;
        wrong.value("attempts", attempts.saturating_add(1));
        tx.execute(&wrong).await?;
        return refused(codes::INVALID_CODE, "wrong code");
    }
    let mut used = mark;
    used.value("used_at", now);
    tx.execute(&used).await?;

    let (customer_id, created) = match account(tx, tenant, &command.phone).await? {
        Some(customer_id) => {
            if crate::customers::find(tx, tenant, customer_id).await?.is_some_and(|c| c.blocked) {
                return refused(codes::CUSTOMER_BLOCKED, "this customer is blocked");
            }
            (customer_id, false)
        }
        None => {
            let create = CreateCustomer {
                customer_id: command.new_customer_id,
                subaccount_id: None,
                profile: CustomerProfile { phone: Some(command.phone.clone()), ..CustomerProfile::default() },
                external_ref: None,
                payments_collected_by: None,
            };
            if crate::customers::create(tx, cause, &create, now).await?.is_none() {
                return Ok(Outcome::Refused(Refusal::conflict("the new customer's id is taken")));
            }
            let insert = Query::insert()
                .into_table("mobile_accounts")
                .columns(["tenant", "phone", "customer_id", "created_at", "updated_at"])
                .values_panic([
                    tenant.into(),
                    command.phone.as_str().into(),
                    command.new_customer_id.into(),
                    now.into(),
                    now.into(),
                ])
                .to_owned();
            tx.execute(&insert).await?;
            (command.new_customer_id, true)
        }
    };
    let session = Query::insert()
        .into_table("mobile_sessions")
        .columns(["session_hash", "tenant", "customer_id", "expires_at", "created_at"])
        .values_panic([
            command.session_hash.as_str().into(),
            tenant.into(),
            customer_id.into(),
            command.session_expires_at.into(),
            now.into(),
        ])
        .on_conflict(OnConflict::column("session_hash").do_nothing().to_owned())
        .to_owned();
    tx.execute(&session).await?;
    Ok(Outcome::Done(SignedIn { customer_id, created }))
}

/// The customer a phone signed in as, if it ever did.
async fn account(db: &impl ConnectionTrait, tenant: &str, phone: &str) -> Result<Option<Uuid>, DbErr> {
    let query = Query::select()
        .column("customer_id")
        .from("mobile_accounts")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("phone").eq(phone))
        .to_owned();
    db.query_one(&query).await?.map(|row| row.try_get("", "customer_id")).transpose()
}

/// Records a mobile customer's push notification token.
pub(crate) async fn set_notification_token(
    tx: &DatabaseTransaction,
    tenant: &str,
    customer_id: Uuid,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Outcome<serde_json::Value>, DbErr> {
    let update = Query::update()
        .table("mobile_accounts")
        .value("notification_token", token)
        .value("updated_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("customer_id").eq(customer_id))
        .to_owned();
    if tx.execute(&update).await?.rows_affected() == 0 {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no mobile customer {customer_id}"))));
    }
    Ok(Outcome::Done(serde_json::json!({ "updated": true })))
}

/// Deletes expired sessions and codes older than a day; returns rows deleted.
pub async fn purge(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let sessions = Query::delete().from_table("mobile_sessions").and_where(Expr::col("expires_at").lt(now)).to_owned();
    let codes = Query::delete()
        .from_table("sign_in_codes")
        .and_where(Expr::col("created_at").lt(now - Duration::days(1)))
        .to_owned();
    Ok(db.execute(&sessions).await?.rows_affected() + db.execute(&codes).await?.rows_affected())
}
