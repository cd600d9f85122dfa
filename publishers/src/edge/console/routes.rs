//! The console's routes below [`BASE`]: its assets and sign-in, open to anyone; every other page
//! behind an operator's session (and, for forms, its CSRF token).

use http::Method;

use super::{BASE, Console, View, Visit, bus, chargers, fleet, integrations, profile, webhooks};
use crate::edge::envelope::ApiError;
use crate::edge::router::{Access, Boxed, Door, Handler, OwnAction, Returns, Route};

/// What a console page does, for an operator the console let in.
pub(crate) type Page = for<'a, 'b> fn(&'a Visit<'b>) -> Boxed<'a, Result<View, ApiError>>;

/// The console's routes.
pub(crate) fn routes() -> Vec<Route> {
    let route = |method: Method, path: &str, operation, summary, access, handler| Route {
        door: Door::Console,
        method,
        path: format!("{BASE}{path}"),
        operation,
        summary,
        access,
        body: None,
        status: 200,
        returns: Returns::Text("text/html"),
        handler,
    };
    let open = |method, path, operation, summary, action: OwnAction| {
        route(method, path, operation, summary, Access::Own, Handler::Own(action))
    };
    let page = |method, path, operation, summary, page: Page| {
        route(method, path, operation, summary, Access::Operator, Handler::Console(page))
    };
    use Method as M;
    vec![
        open(M::GET, "/assets/console.css", "consoleStylesheet", "The console's stylesheet.", |doors, _, _| {
            Box::pin(async move { Console::door(doors, |_| Ok(super::stylesheet())) })
        }),
        open(M::GET, "/assets/console.js", "consoleScript", "The console's script.", |doors, _, _| {
            Box::pin(async move { Console::door(doors, |_| Ok(super::script())) })
        }),
        open(M::GET, "/sign-in", "consoleSignInPage", "The sign-in form.", |doors, request, _| {
            Box::pin(async move {
                let query = request.uri().query().map(str::to_owned);
                Console::door(doors, |console| console.sign_in_page(None, http::StatusCode::OK, query.as_deref()))
            })
        }),
        open(M::POST, "/sign-in", "consoleSignIn", "Signs an operator in (e-mail, password).", |doors, request, _| {
            Box::pin(Console::sign_in_door(doors, request))
        }),
        page(M::POST, "/sign-out", "consoleSignOut", "Signs the operator out.", |visit| {
            Box::pin(async move { visit.console.sign_out(&visit.session).await.map(View::SignedOut) })
        }),
        page(M::GET, "", "consoleHome", "The operator's organisation, or the list of them.", |visit| {
            Box::pin(async move { Ok(View::Redirect(visit.console.home(visit))) })
        }),
        page(M::GET, "/orgs", "consoleOrganisations", "The organisations the operator reaches.", |visit| {
            Box::pin(visit.console.organisations(visit))
        }),
        page(M::GET, "/orgs/go", "consoleFindOrganisation", "Opens the organisation named in the form.", |visit| {
            Box::pin(async move { super::go_to_organisation(visit) })
        }),
        page(M::GET, "/orgs/{org}", "consoleOrganisation", "An organisation: its integrations.", |visit| {
            Box::pin(async move { Ok(View::Redirect(format!("{BASE}/orgs/{}/integrations", visit.param("org")))) })
        }),
        page(M::GET, "/orgs/{org}/integrations", "consoleIntegrations", "Integrations and their use.", |visit| {
            Box::pin(integrations::list(visit))
        }),
        page(M::POST, "/orgs/{org}/integrations", "consoleCreateIntegration", "A new integration.", |visit| {
            Box::pin(integrations::create(visit))
        }),
        page(M::POST, "/orgs/{org}/integrations/{id}/rotate", "consoleRotateIntegration", "A new secret.", |visit| {
            Box::pin(integrations::rotate(visit))
        }),
        page(M::POST, "/orgs/{org}/integrations/{id}/disable", "consoleDisableIntegration", "Disables it.", |visit| {
            Box::pin(integrations::set_active(visit, false))
        }),
        page(M::POST, "/orgs/{org}/integrations/{id}/enable", "consoleEnableIntegration", "Enables it.", |visit| {
            Box::pin(integrations::set_active(visit, true))
        }),
        page(M::POST, "/orgs/{org}/integrations/{id}/revoke", "consoleRevokeIntegration", "Revokes it.", |visit| {
            Box::pin(integrations::revoke(visit))
        }),
        page(M::GET, "/orgs/{org}/keys", "consoleKeys", "Partner API keys and their use.", |visit| {
            Box::pin(integrations::keys(visit))
        }),
        page(M::POST, "/orgs/{org}/keys", "consoleCreateKey", "A new key.", |visit| {
            Box::pin(integrations::create_key(visit))
        }),
        page(M::POST, "/orgs/{org}/keys/{id}/regenerate", "consoleRegenerateKey", "A key's new secret.", |visit| {
            Box::pin(integrations::regenerate_key(visit))
        }),
        page(M::POST, "/orgs/{org}/keys/{id}/disable", "consoleDisableKey", "Disables a key.", |visit| {
            Box::pin(integrations::set_key_active(visit, false))
        }),
        page(M::POST, "/orgs/{org}/keys/{id}/enable", "consoleEnableKey", "Enables a key.", |visit| {
            Box::pin(integrations::set_key_active(visit, true))
        }),
        page(M::POST, "/orgs/{org}/keys/{id}/delete", "consoleDeleteKey", "Deletes a key.", |visit| {
            Box::pin(integrations::delete_key(visit))
        }),
        page(M::GET, "/orgs/{org}/webhooks", "consoleWebhooks", "Webhook endpoints.", |visit| {
            Box::pin(webhooks::endpoints(visit))
        }),
        page(M::POST, "/orgs/{org}/webhooks", "consoleCreateWebhook", "A new endpoint.", |visit| {
            Box::pin(webhooks::create(visit))
        }),
        page(M::GET, "/orgs/{org}/webhooks/{id}", "consoleWebhook", "An endpoint and its deliveries.", |visit| {
            Box::pin(webhooks::show(visit))
        }),
        page(M::POST, "/orgs/{org}/webhooks/{id}/test", "consoleTestWebhook", "Sends a test event.", |visit| {
            Box::pin(webhooks::test(visit))
        }),
        page(
            M::POST,
            "/orgs/{org}/webhooks/{id}/replay",
            "consoleReplayWebhook",
            "Replays failed deliveries.",
            |visit| Box::pin(webhooks::replay(visit)),
        ),
        page(
            M::POST,
            "/orgs/{org}/webhooks/{id}/deliveries/{delivery}/replay",
            "consoleReplayDelivery",
            "Replays one delivery.",
            |visit| Box::pin(webhooks::replay_delivery(visit)),
        ),
        page(M::GET, "/orgs/{org}/vehicles", "consoleVehicles", "Vehicles and their map.", |visit| {
            Box::pin(fleet::vehicles(visit))
        }),
        page(M::GET, "/orgs/{org}/vehicles/{id}", "consoleVehicle", "A vehicle, its reports and commands.", |visit| {
            Box::pin(fleet::show(visit))
        }),
        page(M::POST, "/orgs/{org}/vehicles/{id}/commands", "consoleSendCommand", "Sends a command.", |visit| {
            Box::pin(fleet::send_command(visit))
        }),
        page(M::GET, "/orgs/{org}/vehicle-commands/{id}", "consoleCommand", "A command, as it goes.", |visit| {
            Box::pin(fleet::command(visit))
        }),
        page(
            M::GET,
            "/orgs/{org}/vehicle-commands/{id}/live",
            "consoleCommandLive",
            "Where a command stands (JSON).",
            |visit| Box::pin(fleet::command_live(visit)),
        ),
        page(M::GET, "/orgs/{org}/profile", "consoleProfile", "The organisation's compatibility profile.", |visit| {
            Box::pin(profile::show(visit))
        }),
        page(M::POST, "/orgs/{org}/profile", "consoleSaveProfile", "Sets the compatibility profile.", |visit| {
            Box::pin(profile::save(visit))
        }),
        page(M::GET, "/orgs/{org}/chargers", "consoleChargers", "Chargers and their OCPP connections.", |visit| {
            Box::pin(chargers::chargers(visit))
        }),
        page(M::POST, "/orgs/{org}/chargers/{id}/reset", "consoleResetCharger", "Resets a charger.", |visit| {
            Box::pin(chargers::reset(visit))
        }),
        page(
            M::POST,
            "/orgs/{org}/chargers/{id}/password",
            "consoleChargerPassword",
            "A new OCPP password, shown once.",
            |visit| Box::pin(chargers::password(visit)),
        ),
        page(M::GET, "/bus", "consoleBus", "Queues, dead letters and the outbox.", |visit| {
            Box::pin(bus::overview(visit))
        }),
        page(M::GET, "/bus/live", "consoleBusLive", "The bus page's numbers (JSON).", |visit| {
            Box::pin(bus::live_numbers(visit))
        }),
        page(M::GET, "/bus/dead-letters/{group}", "consoleDeadLetters", "A group's dead letters.", |visit| {
            Box::pin(bus::letters(visit))
        }),
        page(
            M::POST,
            "/bus/dead-letters/{group}/replay",
            "consoleReplayDeadLetters",
            "Replays a group's dead letters.",
            |visit| Box::pin(bus::replay_letters(visit)),
        ),
    ]
}
