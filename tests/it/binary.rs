//! The `voltbus` executable itself: `--help`, `--version`, `serve` until SIGINT, `migrate`.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{get_json, scratch_dir};

fn voltbus() -> Command {
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
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("voltbus {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn invalid_configuration_stops_with_one_line() {
    let output = voltbus()
        .arg("serve")
        .env("VOLTBUS__HTTP__BIND", "nonsense")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("http.bind"), "{stderr}");
}

#[test]
fn migrate_on_the_embedded_database() {
    let output = voltbus().arg("migrate").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(
        status.status.success(),
        "exit {:?}: {stderr}",
        status.status
    );
    assert!(stderr.contains("voltbus stopped"), "{stderr}");
}
