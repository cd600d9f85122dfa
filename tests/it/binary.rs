//! The `voltbus` executable itself: `--help`, `--version`, `serve` until SIGINT, `migrate`.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{get_json, scratch_dir};

pub(crate) fn voltbus() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_voltbus"));
    command.current_dir(scratch_dir()).env_remove("RUST_LOG");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("VOLTBUS")) {
        command.env_remove(key);
    }
    command
}

#[test]
fn help_and_version() {
    let help = voltbus().arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("serve") && text.contains("migrate"), "{text}");
    let version = voltbus().arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("voltbus {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn invalid_configuration_stops_with_one_line() {
    let output = voltbus().arg("serve").env("VOLTBUS__HTTP__BIND", "nonsense").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("http.bind"), "{stderr}");
}

#[test]
fn migrate_on_the_embedded_database() {
    let output = voltbus().arg("migrate").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn serve_answers_health_and_stops_cleanly_on_sigint() {
    let port = free_port();
    let child = voltbus()
        .arg("serve")
        .env("VOLTBUS__HTTP__BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut answered = None;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            answered = Some(get_json(addr, "/health").await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body, _) = answered.expect("voltbus serve never listened");
    assert_eq!(status, 200, "{body}");

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(status.status.success(), "exit {:?}: {stderr}", status.status);
    assert!(stderr.contains("voltbus stopped"), "{stderr}");
}

#[tokio::test]
async fn dead_letters_are_listed_and_replayed_from_the_command_line() {
    use bus::amqp::{AmqpConnection, GroupTopology};
    use lapin::types::AMQPValue;

    let amqp_url = crate::support::amqp_url();
    let amqp = AmqpConnection::connect(&amqp_url, "voltbus-test").await.unwrap();
    let group = crate::support::unique("cli");
    let topology = GroupTopology::commands(group.clone(), vec![], vec![]);
    topology.declare(&amqp).await.unwrap();
    let envelope = schemas::Envelope::new(
        crate::support::tenant(),
        "voltbus/test",
        schemas::rides::PauseRide { ride_id: uuid::Uuid::now_v7() },
    );
    let mut headers = lapin::types::FieldTable::default();
    headers.insert("x-voltbus-reason".into(), AMQPValue::LongString("ride already ended".into()));
    headers.insert("x-voltbus-error-kind".into(), AMQPValue::LongString("permanent".into()));
    headers.insert("x-voltbus-source-queue".into(), AMQPValue::LongString(topology.work_queue().as_str().into()));
    let properties = bus::amqp::properties_of(&envelope).with_headers(headers);
    amqp.publish_raw("", &topology.dead_letter_queue(), &envelope.encode(), properties, true).await.unwrap();

    let run = {
        let amqp_url = amqp_url.clone();
        move |args: Vec<String>| voltbus().args(&args).env("VOLTBUS__AMQP__URL", &amqp_url).output().unwrap()
    };
    let listed = tokio::task::spawn_blocking({
        let (group, run) = (group.clone(), run.clone());
        move || run(vec!["dead-letters".into(), "list".into(), "--group".into(), group])
    })
    .await
    .unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let letters: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(letters[0]["reason"], "ride already ended");
    assert_eq!(letters[0]["message_id"], envelope.id.to_string());

    let replayed = tokio::task::spawn_blocking({
        let group = group.clone();
        let id = envelope.id.to_string();
        move || run(vec!["dead-letters".into(), "replay".into(), "--group".into(), group, "--id".into(), id])
    })
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&replayed.stdout).contains("replayed 1"),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let work = amqp
        .channel()
        .await
        .unwrap()
        .queue_declare(
            topology.work_queue().as_str().into(),
            lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(work.message_count(), 1, "the message is back in its work queue");
    let channel = amqp.channel().await.unwrap();
    for queue in [topology.work_queue(), topology.dead_letter_queue()] {
        let _ = channel.queue_delete(queue.as_str().into(), Default::default()).await;
    }
}

#[test]
fn dead_letters_on_rabbitmq_need_its_url() {
    let output = voltbus().args(["dead-letters", "list", "--group", "rides", "--transport", "amqp"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("amqp.url"));
}

#[test]
fn dead_letters_of_the_embedded_transport_by_default() {
    let output = voltbus().args(["dead-letters", "list", "--group", "rides"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "[]");
}
