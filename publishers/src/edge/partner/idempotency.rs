//! `Idempotency-Key` on POST, PUT, PATCH and DELETE: the first answer to a key is kept for 24 hours
//! and replayed to every retry of the same request; the same key with another request is refused.
//! The key also fixes the command's message id, so the bus inbox drops a command that a lost
//! answer made the partner send again.
//!
//! Records live in the `idempotency_keys` table, written by the edge itself: they are a copy of
//! answers already given, not domain state (docs/ARCHITECTURE.md).

use std::time::Duration;

use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode};
use readside::ids::derived_id;
use ring::digest;
use schemas::TenantId;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use uuid::Uuid;

use crate::edge::envelope::ApiError;

/// The request header.
pub(crate) const HEADER: &str = "idempotency-key";
/// How long an answer is replayed.
pub(crate) const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Past the edge's request timeout, how long an unanswered record waits before it is taken to
/// have died with its edge: no live edge works on a request longer than its timeout, so a record
/// older than that is a killed process's (or its answer could not be written). The margin also
/// absorbs edges whose clocks or timeouts differ (a configuration being rolled out).
const ABANDON_MARGIN: Duration = Duration::from_secs(30);
/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// An idempotency key of one tenant and the fingerprint of the request that carries it.
#[derive(Clone, Debug)]
pub(crate) struct Claim {
    tenant: TenantId,
    key: String,
    request_hash: String,
}

/// What to do with a request that carries an idempotency key.
#[derive(Debug)]
pub(crate) enum Begin {
    /// First time: answer it, then [`Store::finish`].
    Fresh(Claim),
    /// Answered before: send this again.
    Replay { status: StatusCode, body: String },
}

impl Claim {
    /// Reads the `Idempotency-Key` header's value, if present, and fingerprints the request.
    pub fn from_request(
        tenant: &TenantId,
        header: Option<&HeaderValue>,
        method: &str,
        path: &str,
        subaccount: Option<Uuid>,
        body: &[u8],
    ) -> Result<Option<Self>, ApiError> {
        let Some(value) = header else { return Ok(None) };
        let key = value
            .to_str()
            .ok()
            .filter(|k| (1..=MAX_KEY_LEN).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| ApiError::invalid(HEADER, "Idempotency-Key must be 1 to 255 visible ASCII characters"))?;
        let mut context = digest::Context::new(&digest::SHA256);
        for part in
            [method.as_bytes(), path.as_bytes(), subaccount.map(|s| s.to_string()).unwrap_or_default().as_bytes()]
        {
            context.update(part);
            context.update(b"\n");
        }
        context.update(body);
        let request_hash = hex::encode(context.finish().as_ref());
        Ok(Some(Self { tenant: tenant.clone(), key: key.to_owned(), request_hash }))
    }

    /// The message id of the command this request sends: the same for every retry of it.
    pub fn command_id(&self) -> Uuid {
        derived_id(&format!("{}\n{}", self.tenant, self.key))
    }
}

/// The idempotency records.
pub(crate) struct Store {
    database: DatabaseConnection,
    /// A record unanswered for longer is abandoned.
    abandoned_after: Duration,
}

fn stored(error: DbErr) -> ApiError {
    tracing::error!(%error, "idempotency record failed");
    ApiError::unavailable("cannot record the Idempotency-Key right now; nothing was done")
}

impl Store {
    /// Records in `database`, of requests answered within `request_timeout`.
    pub fn new(database: DatabaseConnection, request_timeout: Duration) -> Self {
        Self { database, abandoned_after: request_timeout + ABANDON_MARGIN }
    }

    fn key_filter(claim: &Claim) -> [sea_orm::sea_query::SimpleExpr; 2] {
        [Expr::col("tenant").eq(claim.tenant.as_str()), Expr::col("idempotency_key").eq(claim.key.as_str())]
    }

    /// Takes the key for this request, or finds its earlier answer.
    pub async fn begin(&self, claim: Claim) -> Result<Begin, ApiError> {
        // Two rounds at most: the second after removing an expired or abandoned record.
        for _ in 0..2 {
            let insert = Query::insert()
                .into_table("idempotency_keys")
                .columns(["tenant", "idempotency_key", "request_hash", "created_at"])
                .values_panic([
                    claim.tenant.as_str().into(),
                    claim.key.as_str().into(),
                    claim.request_hash.as_str().into(),
                    Utc::now().into(),
                ])
                .on_conflict(OnConflict::columns(["tenant", "idempotency_key"]).do_nothing().to_owned())
                .to_owned();
            if self.database.execute(&insert).await.map_err(stored)?.rows_affected() == 1 {
                return Ok(Begin::Fresh(claim));
            }
            let [tenant, key] = Self::key_filter(&claim);
            let select = Query::select()
                .columns(["request_hash", "status", "body", "created_at"])
                .from("idempotency_keys")
                .and_where(tenant)
                .and_where(key)
                .to_owned();
            let Some(row) = self.database.query_one(&select).await.map_err(stored)? else { continue };
            let created_at: DateTime<Utc> = row.try_get("", "created_at").map_err(stored)?;
            let status: Option<i16> = row.try_get("", "status").map_err(stored)?;
            let age = (Utc::now() - created_at).to_std().unwrap_or_default();
            if age > RETENTION || (status.is_none() && age > self.abandoned_after) {
                // Only the record seen: another retry may have taken the key over meanwhile.
                let [tenant, key] = Self::key_filter(&claim);
                let delete = Query::delete()
                    .from_table("idempotency_keys")
                    .and_where(tenant)
                    .and_where(key)
                    .and_where(Expr::col("created_at").eq(created_at))
                    .to_owned();
                self.database.execute(&delete).await.map_err(stored)?;
                continue;
            }
            let request_hash: String = row.try_get("", "request_hash").map_err(stored)?;
            if request_hash != claim.request_hash {
                return Err(ApiError::idempotency_key_reused());
            }
            return match status {
                None => Err(ApiError::conflict("a request with this Idempotency-Key is still being answered")),
                Some(status) => {
                    let body: Option<String> = row.try_get("", "body").map_err(stored)?;
                    let status = u16::try_from(status).ok().and_then(|s| StatusCode::from_u16(s).ok());
                    Ok(Begin::Replay {
                        status: status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        body: body.unwrap_or_default(),
                    })
                }
            };
        }
        Err(ApiError::conflict("the Idempotency-Key is being taken by another request"))
    }

    /// Keeps the answer for replay.
    pub async fn finish(&self, claim: &Claim, status: StatusCode, body: &str) {
        let [tenant, key] = Self::key_filter(claim);
        let update = Query::update()
            .table("idempotency_keys")
            .value("status", i16::try_from(status.as_u16()).unwrap_or(i16::MAX))
            .value("body", body)
            .and_where(tenant)
            .and_where(key)
            .to_owned();
        if let Err(error) = self.database.execute(&update).await {
            // The answer still goes out; a retry then finds the key in progress and, once it is
            // abandoned, runs again with the same command id, which the inbox de-duplicates.
            tracing::error!(%error, "could not keep the answer of an idempotent request");
        }
    }

    /// Lets the key go (the request failed on our side; a retry should run again).
    pub async fn abandon(&self, claim: &Claim) {
        let [tenant, key] = Self::key_filter(claim);
        let delete = Query::delete().from_table("idempotency_keys").and_where(tenant).and_where(key).to_owned();
        if let Err(error) = self.database.execute(&delete).await {
            tracing::error!(%error, "could not release an idempotency key");
        }
    }

    /// Deletes records older than the retention period; returns how many.
    pub async fn purge(&self) -> Result<u64, DbErr> {
        let cutoff = Utc::now() - chrono::Duration::from_std(RETENTION).unwrap_or_default();
        let delete =
            Query::delete().from_table("idempotency_keys").and_where(Expr::col("created_at").lt(cutoff)).to_owned();
        Ok(self.database.execute(&delete).await?.rows_affected())
    }
}
