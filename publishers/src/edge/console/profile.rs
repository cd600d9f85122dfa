//! An organisation's compatibility profile: the name of the header carrying the seed's webhook
//! signature and the prefix of its new API keys, so partners coming from another platform (Levy
//! Fleets) keep their code. Set by the operator here or with `voltbus profile`.

use schemas::integrations::{CompatibilityProfile, SetCompatibilityProfile};
use schemas::{Envelope, TenantId};

use super::html::{self, esc};
use super::{View, Visit};
use crate::edge::envelope::{ApiError, db_error};

/// `GET /admin/orgs/{org}/profile`.
pub(super) async fn show(visit: &Visit<'_>) -> Result<View, ApiError> {
    let org = visit.param("org");
    let caller = visit.caller(org)?;
    let api = &visit.console.api;
    let profile =
        readside::integrations::profiles::find(&api.database, caller.tenant.as_str()).await.map_err(db_error)?;
    let fields = format!(
        "{}{}{}",
        html::select(
            "preset",
            "Start from",
            &[("", "the names below"), ("levy", "Levy Fleets (X-Levy-Signature, lf_pk_)")],
            ""
        ),
        html::input(
            "signature_header",
            "Signature header (empty: X-Voltbus-Signature)",
            "text",
            profile.signature_header.as_deref().unwrap_or_default(),
            "maxlength=\"64\" pattern=\"[Xx]-[A-Za-z0-9-]*-[Ss]ignature\""
        ),
        html::input(
            "key_prefix",
            &format!("New keys' prefix (empty: {})", api.settings.key_prefix),
            "text",
            profile.key_prefix.as_deref().unwrap_or_default(),
            "maxlength=\"8\" pattern=\"[a-z]{2,8}\""
        ),
    );
    let form = html::form(&format!("/admin/orgs/{}/profile", esc(org)), &visit.csrf(), &fields, "Save", "stack");
    let body = format!(
        "<section id=\"profile\"><p>Partners moving from another platform keep their code: webhooks carry the \
         seed's signature under this header, and new keys start with this prefix (keys made before keep theirs). \
         See docs/MIGRATING-FROM-LEVY.md.</p>{form}</section>"
    );
    Ok(View::Page { title: "Compatibility".into(), organisation: Some(org.into()), body })
}

/// `POST /admin/orgs/{org}/profile`.
pub(super) async fn save(visit: &Visit<'_>) -> Result<View, ApiError> {
    let org = visit.param("org");
    let tenant: TenantId = visit.caller(org)?.tenant;
    let given = |name: &str| visit.field(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let mut profile = if visit.field("preset") == Some("levy") {
        CompatibilityProfile::levy()
    } else {
        CompatibilityProfile::default()
    };
    profile.signature_header = given("signature_header").or(profile.signature_header);
    profile.key_prefix = given("key_prefix").or(profile.key_prefix);
    profile.check().map_err(|why| ApiError::invalid("profile", why))?;
    let api = &visit.console.api;
    let command = Envelope::new(tenant, "voltbus/console", SetCompatibilityProfile { profile });
    let _: CompatibilityProfile = api.bus.request(&command, api.settings.command_timeout).await?;
    Ok(View::Redirect(format!("/admin/orgs/{org}/profile?notice=saved")))
}
