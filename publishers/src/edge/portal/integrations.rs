//! EVCare integrations (admin keys only): create one with an access bundle and an optional
//! endpoint allow-list (its `clientId`/`clientSecret` shown once), list, read, rotate the secret
//! with a grace period, revoke, disable and enable; the sign-in bridge (`/auth/exchange`, an
//! integration's machine token) and the bundle questionnaire. Reads come from the database;
//! every change is a command on the bus, answered by the integrations consumers.

use chrono::{DateTime, Utc};
use http::StatusCode;
use readside::integrations::clients::{self, Integration};
use readside::integrations::identities::{self, LinkedUser};
use schemars::JsonSchema;
use schemas::integrations::{
    AccessBundle, CreateIntegration, ExchangeExternalIdentity, RevokeIntegration, RotateIntegrationSecret,
    SetIntegrationActive,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api_keys::{self, KeyHash};
use crate::edge::body::{bounded_text, parse_body};
use crate::edge::commands::command;
use crate::edge::envelope::db_error;
use crate::edge::envelope::{Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::customers::is_email;
use crate::edge::partner::routes::Call;
use crate::edge::query::page_of;
use crate::edge::router::Access;
use crate::permissions::{self, Capability};

/// Client ids start with this.
pub(crate) const CLIENT_ID_PREFIX: &str = "evc_ci_";
/// Client secrets start with this.
pub(crate) const CLIENT_SECRET_PREFIX: &str = "evc_cs_";
/// Session codes start with this.
pub(crate) const SESSION_CODE_PREFIX: &str = "evc_session_";
/// Longest grace a rotation may give the old secret: 30 days.
const MAX_GRACE_SECONDS: u32 = 30 * 24 * 3600;
/// Longest name, external subject, reason.
const MAX_TEXT: usize = 200;

/// The roles a federated user may have, and the bundles that may grant each.
const ROLES: [(&str, &[AccessBundle]); 3] = [
    ("CLIENT", &[AccessBundle::ClientAccess, AccessBundle::AllAccess]),
    ("FLEET_MANAGER", &[AccessBundle::AllAccess]),
    ("ORGANIZATION_ADMIN", &[AccessBundle::AllAccess]),
];

/// `POST /integrations`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewIntegration {
    /// Display name, 1 to 200 characters.
    #[schemars(length(min = 1, max = 200))]
    name: String,
    /// The access bundle granted.
    bundle: AccessBundle,
    /// Operation ids (as the OpenAPI document names them) the integration is limited to, all
    /// within its bundle; none: the whole bundle.
    #[serde(default)]
    allowed_endpoints: Vec<String>,
}

/// An integration with its client secret, shown this once.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IntegrationWithSecret {
    #[serde(flatten)]
    integration: Integration,
    /// `evc_cs_…`: shown once, stored only as a hash.
    client_secret: Option<String>,
}

/// `POST /integrations/{id}/rotate-secret`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Rotation {
    /// How long the old secret keeps working, in seconds (default: the configured grace).
    #[schemars(range(max = 2_592_000))]
    grace_seconds: Option<u32>,
}

/// `POST /integrations/{id}/revoke`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Revocation {
    /// Why, for the audit log.
    #[schemars(length(max = 200))]
    reason: Option<String>,
}

/// `POST /integrations/auth/exchange`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Exchange {
    /// The calling integration's own id.
    integration_id: Uuid,
    /// The user's id at the partner, 1 to 200 characters.
    #[schemars(length(min = 1, max = 200))]
    external_subject: String,
    /// The user's e-mail.
    #[schemars(length(min = 3, max = 254))]
    email: String,
    /// `CLIENT` (default), `FLEET_MANAGER` or `ORGANIZATION_ADMIN`, as the bundle allows.
    role_hint: Option<String>,
}

/// What `/auth/exchange` answers.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionCode {
    /// `evc_session_…`: redeem it once, in the browser, before `expiresAt`.
    session_code: Option<String>,
    /// When the code stops working.
    expires_at: DateTime<Utc>,
    #[serde(flatten)]
    user: LinkedUser,
}

fn text_of(field: &str, text: &str) -> Result<String, ApiError> {
    bounded_text(field, text, MAX_TEXT, true)
}

/// A secret of `prefix` and 40 random characters, with its hash.
fn secret(api: &PartnerApi, prefix: &str) -> Result<(String, KeyHash), ApiError> {
    let random = api_keys::random_text(40, &api.random).map_err(|error| {
        tracing::error!(%error, "could not make a secret");
        ApiError::internal()
    })?;
    let secret = format!("{prefix}{random}");
    let hash = KeyHash::of(&secret);
    Ok((secret, hash))
}

/// Checks an allow-list: known operation ids, each within `bundle`.
fn allowed_endpoints(api: &PartnerApi, bundle: AccessBundle, endpoints: Vec<String>) -> Result<Vec<String>, ApiError> {
    let mut endpoints = endpoints;
    endpoints.sort();
    endpoints.dedup();
    for (index, operation) in endpoints.iter().enumerate() {
        let field = format!("allowedEndpoints[{index}]");
        let Some(access) = api.access_of(operation) else {
            return Err(ApiError::invalid(&field, format!("no operation `{operation}` in the OpenAPI document")));
        };
        if !grants(bundle, access) {
            return Err(ApiError::invalid(&field, format!("`{operation}` is outside the bundle")));
        }
    }
    Ok(endpoints)
}

/// Whether `bundle` lets an integration use a route of `access`: the one table of what each
/// bundle reaches (its permissions and capabilities); key-only and admin routes are no bundle's.
pub(crate) fn grants(bundle: AccessBundle, access: Access) -> bool {
    match access {
        Access::Permission(permission) => permissions::allows(permissions::bundle(bundle), permission),
        Access::Capability(capability) => permissions::capabilities(bundle).contains(&capability),
        Access::Key | Access::Public => true,
        // Admin routes, and the other doors' credentials, are no bundle's.
        Access::Admin | Access::Session | Access::Operator | Access::Own => false,
    }
}

/// The bundles that reach a route of `access`.
pub(crate) fn bundles_of(access: Access) -> Vec<AccessBundle> {
    const BUNDLES: [AccessBundle; 4] = [
        AccessBundle::OrganizationAccess,
        AccessBundle::FleetManagerAccess,
        AccessBundle::ClientAccess,
        AccessBundle::AllAccess,
    ];
    BUNDLES.into_iter().filter(|bundle| grants(*bundle, access)).collect()
}

/// `POST /integrations`.
pub(crate) async fn create(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: NewIntegration = parse_body(&call.body)?;
    let allowed_endpoints = allowed_endpoints(api, request.bundle, request.allowed_endpoints)?;
    let (client_id, _) = secret(api, CLIENT_ID_PREFIX)?;
    let (client_secret, hash) = secret(api, CLIENT_SECRET_PREFIX)?;
    let create = CreateIntegration {
        integration_id: Uuid::now_v7(),
        name: text_of("name", &request.name)?,
        client_id: client_id.clone(),
        client_secret_hash: hash.to_hex(),
        bundle: request.bundle,
        allowed_endpoints,
    };
    let integration: Integration = api.bus.request(&command(&call, create), api.settings.command_timeout).await?;
    let ours = integration.client_id == client_id;
    with_secret(integration, client_secret, ours, StatusCode::CREATED)
}

/// The answer showing a new secret, unless the reply is from an earlier attempt of the same
/// request (same Idempotency-Key) whose answer was lost (`ours` false): that secret, not this
/// one, is stored, and it cannot be shown again.
fn with_secret(integration: Integration, secret: String, ours: bool, status: StatusCode) -> Result<Answer, ApiError> {
    if !ours {
        return Err(ApiError::conflict(
            "an earlier attempt of this request already set this integration's secret; rotate it to get a new one",
        ));
    }
    Ok(Answer::with_status(status, IntegrationWithSecret { integration, client_secret: Some(secret) })
        .withholding("clientSecret"))
}

/// `GET /integrations`.
pub(crate) async fn list(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let page = page_of(call.query.as_deref())?;
    let (items, total) =
        clients::list(&api.database, call.caller.tenant.as_str(), page.offset(), page.limit).await.map_err(db_error)?;
    Ok(Answer::list(items, page, total))
}

async fn find(api: &PartnerApi, call: &Call) -> Result<Integration, ApiError> {
    let id = call.id("id")?;
    clients::find(&api.database, call.caller.tenant.as_str(), id)
        .await
        .map_err(db_error)?
        .map(|stored| stored.integration)
        .ok_or_else(|| ApiError::not_found(format!("no integration {id}")))
}

/// `GET /integrations/{id}`.
pub(crate) async fn get(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    Ok(Answer::ok(find(api, &call).await?))
}

/// `POST /integrations/{id}/rotate-secret`.
pub(crate) async fn rotate(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let rotation: Rotation = parse_body(&call.body)?;
    let grace = rotation.grace_seconds.unwrap_or(api.settings.integrations.rotation_grace_seconds);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::invalid("graceSeconds", format!("graceSeconds is at most {MAX_GRACE_SECONDS}")));
    }
    let (client_secret, hash) = secret(api, CLIENT_SECRET_PREFIX)?;
    let rotate = RotateIntegrationSecret {
        integration_id: call.id("id")?,
        new_secret_hash: hash.to_hex(),
        grace_seconds: grace,
    };
    let integration: Integration = api.bus.request(&command(&call, rotate), api.settings.command_timeout).await?;
    let stored = clients::find(&api.database, call.caller.tenant.as_str(), integration.id).await.map_err(db_error)?;
    let ours = stored.is_some_and(|stored| KeyHash::from_hex(&stored.secret_hash) == Some(hash));
    with_secret(integration, client_secret, ours, StatusCode::OK)
}

/// `POST /integrations/{id}/revoke`: its secrets and every open token die at once.
pub(crate) async fn revoke(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let revocation: Revocation = parse_body(&call.body)?;
    let reason = revocation.reason.as_deref().map(|r| text_of("reason", r)).transpose()?.unwrap_or_default();
    let revoke = RevokeIntegration { integration_id: call.id("id")?, reason };
    let integration: Integration = api.bus.request(&command(&call, revoke), api.settings.command_timeout).await?;
    // This edge cuts at once; the others when the event reaches them.
    api.cutoffs.cut(integration.id, integration.revoked_at.unwrap_or_else(Utc::now));
    Ok(Answer::ok(integration))
}

/// `POST /integrations/{id}/enable` and `/disable`.
pub(crate) async fn set_active(api: &PartnerApi, call: Call, active: bool) -> Result<Answer, ApiError> {
    let set = SetIntegrationActive { integration_id: call.id("id")?, active };
    let integration: Integration = api.bus.request(&command(&call, set), api.settings.command_timeout).await?;
    if !active {
        api.cutoffs.cut(integration.id, integration.updated_at);
    }
    Ok(Answer::ok(integration))
}

/// `POST /integrations/auth/exchange`: maps the partner's user to ours and opens a one-time
/// session code for the browser.
pub(crate) async fn exchange(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: Exchange = parse_body(&call.body)?;
    let Some(claims) = call.caller.integration() else {
        return Err(ApiError::forbidden("only an integration's machine token exchanges identities"));
    };
    // The body's own faults first: a caller learns what to fix before whose it may name.
    let email = request.email.trim().to_ascii_lowercase();
    if !is_email(&email) {
        return Err(ApiError::invalid("email", "email must be an e-mail address"));
    }
    if request.integration_id != claims.integration_id {
        return Err(ApiError::forbidden("a token exchanges identities for its own integration only")
            .details(serde_json::json!({ "field": "integrationId" })));
    }
    let role = request.role_hint.unwrap_or_else(|| "CLIENT".into());
    match ROLES.iter().find(|(name, _)| *name == role) {
        None => {
            let names: Vec<&str> = ROLES.iter().map(|(name, _)| *name).collect();
            return Err(ApiError::invalid("roleHint", format!("roleHint is one of {}", names.join(", "))));
        }
        Some((_, bundles)) if !bundles.contains(&claims.bundle) => {
            return Err(ApiError::forbidden(format!("the integration's bundle cannot sign in a {role}"))
                .details(serde_json::json!({ "field": "roleHint" })));
        }
        Some(_) => {}
    }
    let (code, hash) = secret(api, SESSION_CODE_PREFIX)?;
    let expires_at = Utc::now() + api.settings.integrations.session_code_ttl;
    let exchange = ExchangeExternalIdentity {
        integration_id: claims.integration_id,
        external_subject: text_of("externalSubject", &request.external_subject)?,
        email,
        role_hint: Some(role),
        session_code_hash: hash.to_hex(),
        session_code_expires_at: expires_at,
    };
    let user: LinkedUser = api.bus.request(&command(&call, exchange), api.settings.command_timeout).await?;
    // A retry of an exchange whose first answer was lost (same Idempotency-Key) is answered from
    // the first attempt, which stored its own code, not this one: this code would never work.
    let stored = identities::tenant_of_code(&api.database, &hash.to_hex()).await.map_err(db_error)?;
    if stored.is_none() {
        return Err(ApiError::conflict(
            "an earlier attempt of this request already made a session code; exchange again with a new Idempotency-Key",
        ));
    }
    Ok(Answer::ok(SessionCode { session_code: Some(code), expires_at, user }).withholding("sessionCode"))
}

/// `POST /integrations/questionnaire/recommend`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Questionnaire {
    /// Operation ids the integration will call, if known (the strongest evidence).
    #[serde(default)]
    endpoints: Vec<String>,
    /// It manages the organisation: customers, their wallets, subaccounts.
    #[serde(default)]
    manages_organization: bool,
    /// It manages vehicles: status, maintenance tickets at workshops.
    #[serde(default)]
    manages_fleet: bool,
    /// It is an app for riders or drivers: finding vehicles, riding, paying, reporting problems.
    #[serde(default)]
    serves_riders: bool,
    /// It manages its own webhooks.
    #[serde(default)]
    manages_webhooks: bool,
    /// It signs its users in to voltbus from its own site.
    #[serde(default)]
    federated_sign_in: bool,
    /// It embeds the hosted portal.
    #[serde(default)]
    embed_portal: bool,
}

/// The questionnaire's answer.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Recommendation {
    /// The smallest bundle that covers every answer.
    pub bundle: AccessBundle,
    /// 0 to 1: how sure the recommendation is (explicit endpoints and a close fit raise it).
    pub confidence: f64,
    /// Why, one line per finding.
    pub rationale: Vec<String>,
    /// The allow-list to set, when endpoints were named: least privilege within the bundle.
    pub allowed_endpoints: Vec<String>,
}

/// A need the answers imply: a route access, and why.
type Need = (Access, String);

fn needs_of(api: &PartnerApi, answers: &Questionnaire) -> Result<Vec<Need>, ApiError> {
    use schemas::integrations::Permission::*;
    let mut needs: Vec<Need> = Vec::new();
    for (index, operation) in answers.endpoints.iter().enumerate() {
        match api.access_of(operation) {
            None => {
                let field = format!("endpoints[{index}]");
                return Err(ApiError::invalid(&field, format!("no operation `{operation}` in the OpenAPI document")));
            }
            Some(Access::Admin) => {
                let field = format!("endpoints[{index}]");
                return Err(ApiError::invalid(&field, format!("`{operation}` needs an admin key, not a bundle")));
            }
            Some(access) => needs.push((access, format!("`{operation}` was named"))),
        }
    }
    let mut add = |yes: bool, permissions: &[schemas::integrations::Permission], why: &str| {
        if yes {
            needs.extend(permissions.iter().map(|p| (Access::Permission(*p), why.to_owned())));
        }
    };
    add(
        answers.manages_organization,
        &[CustomersRead, CustomersWrite, WalletRead, WalletWrite],
        "manages the organisation",
    );
    add(answers.manages_fleet, &[VehiclesRead, VehiclesWrite], "manages vehicles");
    add(answers.serves_riders, &[VehiclesRead, RidesRead, RidesWrite, WalletRead], "serves riders");
    add(answers.manages_webhooks, &[WebhooksRead, WebhooksWrite], "manages webhooks");
    if answers.manages_fleet {
        needs.push((Access::Capability(Capability::MaintenanceTickets), "manages vehicles' maintenance".into()));
    }
    if answers.serves_riders {
        needs.push((Access::Capability(Capability::DriverTickets), "drivers report problems".into()));
    }
    if answers.federated_sign_in {
        needs.push((Access::Capability(Capability::SignInBridge), "signs users in from its site".into()));
    }
    if answers.embed_portal {
        needs.push((Access::Capability(Capability::EmbedPortal), "embeds the hosted portal".into()));
    }
    Ok(needs)
}

/// How much a bundle grants: its permissions and capabilities.
fn breadth(bundle: AccessBundle) -> usize {
    permissions::bundle(bundle).len() + permissions::capabilities(bundle).len()
}

/// The smallest bundle covering the answers, with how sure that is and why.
pub(crate) fn recommend(api: &PartnerApi, answers: &Questionnaire) -> Result<Recommendation, ApiError> {
    let needs = needs_of(api, answers)?;
    let mut candidates = bundles_of(Access::Key);
    candidates.sort_by_key(|bundle| breadth(*bundle));
    let bundle = candidates
        .iter()
        .copied()
        .find(|bundle| needs.iter().all(|(access, _)| grants(*bundle, *access)))
        .unwrap_or(AccessBundle::AllAccess);
    let mut rationale = Vec::new();
    for (access, why) in &needs {
        let name = match access {
            Access::Permission(p) => serde_json::to_value(p).ok().and_then(|v| v.as_str().map(str::to_owned)),
            Access::Capability(c) => serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_owned)),
            _ => None,
        };
        if let Some(name) = name {
            let line = format!("needs {name}: {why}");
            if !rationale.contains(&line) {
                rationale.push(line);
            }
        }
    }
    let needed = {
        let mut names: Vec<String> = needs.iter().map(|(access, _)| format!("{access:?}")).collect();
        names.sort();
        names.dedup();
        names.len()
    };
    let mut confidence: f64 = 1.0;
    if needs.is_empty() {
        rationale.push("no needs were given: the narrowest bundle is suggested, to be widened when needed".into());
        confidence = 0.3;
    } else {
        // Unused grants lower confidence: a close fit is a sure one.
        #[allow(clippy::cast_precision_loss)]
        let fit = needed as f64 / breadth(bundle) as f64;
        confidence -= 0.4 * (1.0 - fit.min(1.0));
        if answers.endpoints.is_empty() {
            confidence -= 0.2;
            rationale.push("no endpoints were named: the fit is judged from yes/no answers".into());
        }
    }
    let smaller: Vec<String> = candidates
        .iter()
        .take_while(|b| **b != bundle)
        .filter_map(|b| serde_json::to_value(b).ok().and_then(|v| v.as_str().map(str::to_owned)))
        .collect();
    if !smaller.is_empty() && !needs.is_empty() {
        rationale.push(format!("narrower bundles miss a need: {}", smaller.join(", ")));
    }
    let mut allowed_endpoints = answers.endpoints.clone();
    allowed_endpoints.sort();
    allowed_endpoints.dedup();
    Ok(Recommendation {
        bundle,
        confidence: (confidence.clamp(0.05, 1.0) * 100.0).round() / 100.0,
        rationale,
        allowed_endpoints,
    })
}

/// `POST /integrations/questionnaire/recommend`.
pub(crate) async fn questionnaire(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let answers: Questionnaire = parse_body(&call.body)?;
    Ok(Answer::ok(recommend(api, &answers)?))
}
