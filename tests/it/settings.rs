//! Configuration layers and the one-line errors of bad configuration.

use std::path::PathBuf;

use voltbus::Settings;
use voltbus::settings::LogFormat;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn defaults_are_the_embedded_platform_on_8080() {
    let settings = Settings::load_from(None, env(&[])).unwrap();
    assert_eq!(settings.http.bind.to_string(), "127.0.0.1:8080");
    assert!(settings.database.url.is_none() && settings.amqp.url.is_none() && settings.nats.url.is_none());
    assert!(settings.database_url().starts_with("sqlite://"));
    assert_eq!(settings.log.format, LogFormat::Human);
}

#[test]
fn file_then_environment() {
    let dir = crate::support::scratch_dir();
    let file: PathBuf = dir.join("voltbus.toml");
    std::fs::write(
        &file,
        "[http]\nbind = \"127.0.0.1:9000\"\n[log]\nformat = \"json\"\n[database]\nurl = \"postgres://file@h/db\"\n",
    )
    .unwrap();
    let settings = Settings::load_from(Some(&file), env(&[("VOLTBUS__DATABASE__URL", "postgres://env@h/db")])).unwrap();
    assert_eq!(settings.http.bind.port(), 9000, "file overrides defaults");
    assert_eq!(settings.log.format, LogFormat::Json);
    assert_eq!(settings.database.url.as_deref(), Some("postgres://env@h/db"), "environment overrides the file");
}

fn error_of(pairs: &[(&str, &str)]) -> String {
    Settings::load_from(None, env(pairs)).expect_err("must be refused").to_string()
}

#[test]
fn bad_configuration_names_the_key() {
    assert!(error_of(&[("VOLTBUS__HTTP__BIND", "nonsense")]).contains("http.bind"));
    assert!(error_of(&[("VOLTBUS__AMQP__URL", "http://x")]).contains("amqp.url"));
    assert!(error_of(&[("VOLTBUS__NATS__URL", "localhost")]).contains("nats.url"));
    // A cluster's nodes, separated by commas: every one must be the engine's URL.
    let cluster =
        [("VOLTBUS__AMQP__URL", "amqp://a:5672/%2f, amqp://b:5672/%2f"), ("VOLTBUS__NATS__URL", "nats://a,nats://b")];
    assert!(Settings::load_from(None, env(&cluster)).is_ok());
    assert!(error_of(&[("VOLTBUS__AMQP__URL", "amqp://a:5672/%2f,http://b")]).contains("amqp.url"));
    assert!(error_of(&[("VOLTBUS__NATS__URL", "nats://a,b:4222")]).contains("nats.url"));
    assert!(error_of(&[("VOLTBUS__DATABASE__URL", "mysql://x")]).contains("database.url"));
    assert!(error_of(&[("VOLTBUS__AMQP__QUORUM_SIZE", "0")]).contains("amqp.quorum_size"));
    assert!(error_of(&[("VOLTBUS__NATS__REPLICAS", "6")]).contains("nats.replicas"));
    let sized = Settings::load_from(None, env(&[("VOLTBUS__AMQP__QUORUM_SIZE", "3")])).unwrap();
    assert_eq!(sized.amqp.quorum_size, Some(3));
    assert!(error_of(&[("VOLTBUS__LOG__FORMAT", "xml")]).contains("format"));
    assert!(error_of(&[("VOLTBUS__DATABSE__URL", "postgres://x")]).contains("databse"));
    // An inbox row must outlive the stream that could replay its message.
    assert!(error_of(&[("VOLTBUS__BUS__INBOX_DAYS", "3")]).contains("bus.inbox_days"));
    assert!(error_of(&[("VOLTBUS__NATS__RETENTION_HOURS", "0")]).contains("nats.retention_hours"));
    assert!(
        Settings::load_from(None, env(&[("VOLTBUS__NATS__RETENTION_HOURS", "24"), ("VOLTBUS__BUS__INBOX_DAYS", "2")]))
            .is_ok()
    );
    let missing = Settings::load_from(Some(std::path::Path::new("/nonexistent/voltbus.toml")), env(&[])).err().unwrap();
    assert!(missing.to_string().contains("voltbus.toml"));
}

#[test]
fn urls_with_passwords_are_not_printed_whole() {
    let settings = Settings::load_from(None, env(&[("VOLTBUS__AMQP__URL", "amqp://user:hunter2@h:5672/%2f")])).unwrap();
    assert!(!format!("{settings:?}").contains("hunter2"));
    let error = error_of(&[("VOLTBUS__DATABASE__URL", "mysql://user:hunter2@h/db")]);
    assert!(!error.contains("hunter2"), "{error}");
}

#[test]
fn no_secret_of_any_section_is_printed() {
    // 32 bytes in base64, as the webhook key must be; its text is the marker.
    let key = "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk=";
    let (operator, account) = bus::nats::accounts::Accounts::generate().seeds().unwrap();
    let secrets = [
        ("VOLTBUS__HTTP__METRICS_TOKEN", "metrics-secret"),
        ("VOLTBUS__WEBHOOKS__ENCRYPTION_KEY", key),
        ("VOLTBUS__NATS__URL", "nats://user:nats-secret@h:4222"),
        ("VOLTBUS__NATS__OPERATOR_SEED", operator.as_str()),
        ("VOLTBUS__NATS__ACCOUNT_SEED", account.as_str()),
        ("VOLTBUS__DATABASE__URL", "postgres://user:database-secret@h/db"),
        ("VOLTBUS__AMQP__URL", "amqp://user:amqp-secret@h:5672/%2f"),
        ("VOLTBUS__INTEGRATIONS__TOKEN_KEY", "token-secret"),
        ("VOLTBUS__MOBILE__DEV_CODE", "dev-code-secret"),
        ("VOLTBUS__MOBILE__CODE_KEY", "code-key-secret"),
        ("VOLTBUS__QPAY__PASSWORD", "qpay-secret"),
        ("VOLTBUS__PAYSTACK__SECRET_KEY", "paystack-secret"),
    ];
    let settings = Settings::load_from(None, env(&secrets)).unwrap();
    let printed = format!("{settings:?} {settings:#?}");
    assert!(printed.contains("metrics_token"), "the settings are printed: {printed}");
    for (name, secret) in secrets {
        // A URL's secret is its password; the rest are secrets whole.
        let marker = secret.split_once("user:").map_or(secret, |(_, rest)| rest.split('@').next().unwrap());
        assert!(!printed.contains(marker), "{name} is printed: {printed}");
    }
}
