//! Partners moving from Levy Fleets keep their code (issue 27): an organisation whose
//! compatibility profile is Levy's gets `lf_pk_…` keys, which its partners present as the seed
//! says (`X-Partner-Api-Key`), and webhooks signed under `X-Levy-Signature`, which the seed's own
//! `verifyWebhook` (Node, `tests/peers/levy_receiver.mjs`) accepts. The operator sets the profile
//! with `voltbus profile` or in the console; other organisations keep voltbus's names.

use std::time::Duration;

use schemas::integrations::CompatibilityProfile;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::console::{PASSWORD, Visitor, email, operator};
use crate::partner::Platform;

/// The seed's receiver, listening; its stdout lines.
async fn levy_receiver(
    secret: &str,
) -> (tokio::process::Child, tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>, u16) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = tokio::process::Command::new("node")
        .arg(root.join("tests/peers/levy_receiver.mjs"))
        .arg(secret)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    let port = serde_json::from_str::<Value>(&first).unwrap()["listening"].as_u64().unwrap();
    (child, lines, u16::try_from(port).unwrap())
}

#[tokio::test]
async fn a_levy_partners_keys_and_webhook_verifier_work_unchanged_under_the_levy_profile() {
    let platform = Platform::start_with(|settings| settings.webhooks.allow_hosts = vec!["127.0.0.1".into()]).await;
    let (tenant, admin) = platform.organisation().await;
    let (_, other_admin) = platform.organisation().await;

    // The operator's command line sets Levy's names; a bad name is refused before anything is stored.
    let set = voltbus::set_profile(&platform.settings, &tenant, CompatibilityProfile::levy()).await.unwrap();
    assert_eq!(set, CompatibilityProfile::levy());
    let bad = CompatibilityProfile { key_prefix: Some("LF".into()), ..CompatibilityProfile::levy() };
    assert!(voltbus::set_profile(&platform.settings, &tenant, bad).await.is_err());

    // Keys as the seed shows them, presented as the seed says.
    let (_, key) = platform.create_key(&admin, json!({ "name": "levy app", "bundle": "ALL_ACCESS" })).await;
    assert!(key.starts_with("lf_pk_"), "{key}");
    let (status, me, _) = platform.call(&key, "GET", "/me", None).await;
    assert_eq!(status, 200, "{me}");
    let (_, theirs) = platform.create_key(&other_admin, json!({ "name": "other" })).await;
    assert!(theirs.starts_with("vb_pk_"), "another organisation keeps voltbus's prefix: {theirs}");

    // The seed's verifier, unchanged, accepts what arrives under X-Levy-Signature.
    let (status, created, _) = platform
        .call(&key, "POST", "/webhooks", Some(json!({ "url": "http://127.0.0.1:9/hooks", "events": ["ride.ended"] })))
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["data"]["secret"].as_str().unwrap().to_owned();
    let (_child, mut lines, port) = levy_receiver(&secret).await;
    let endpoint = created["data"]["id"].as_str().unwrap().to_owned();
    let url = json!({ "url": format!("http://127.0.0.1:{port}/hooks") });
    let (status, patched, _) = platform.call(&key, "PATCH", &format!("/webhooks/{endpoint}"), Some(url)).await;
    assert_eq!(status, 200, "{patched}");
    let (status, sent, _) = platform.call(&key, "POST", &format!("/webhooks/{endpoint}/test"), None).await;
    assert!(status < 300, "{sent}");
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    let got: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (&got["verified"], &got["levy_signature"], &got["voltbus_signature"]),
        (&json!(true), &json!(true), &json!(false)),
        "{got}"
    );

    // The console shows the profile and sets it back to voltbus's names.
    let operator_email = email();
    operator(&platform, &operator_email, Some(&tenant)).await;
    let mut visitor = Visitor::new(platform.addr());
    assert_eq!(visitor.sign_in(&operator_email, PASSWORD).await.status, 303);
    let page = visitor.get(&format!("/admin/orgs/{tenant}/profile")).await;
    assert!(page.body.contains("X-Levy-Signature") && page.body.contains("value=\"lf\""), "{}", page.body);
    let csrf = page.csrf();
    let form = [("csrf", csrf.as_str()), ("preset", ""), ("signature_header", ""), ("key_prefix", "")];
    let saved = visitor.post(&format!("/admin/orgs/{tenant}/profile"), &form).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let (_, key) = platform.create_key(&admin, json!({ "name": "after" })).await;
    assert!(key.starts_with("vb_pk_"), "{key}");
    let bad = [("csrf", csrf.as_str()), ("preset", ""), ("signature_header", "Authorization"), ("key_prefix", "")];
    assert_eq!(visitor.post(&format!("/admin/orgs/{tenant}/profile"), &bad).await.status, 422);
    platform.stop().await;
}
