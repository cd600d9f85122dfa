//! The developer hub's quickstart (`docs/developer-hub/01-quickstart.md`) kept true: its shell
//! block runs, as written, against `voltbus serve` on the embedded default, with a Paystack of
//! the test's own on 127.0.0.1 for step 5.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::binary::{free_port, voltbus};
use crate::replenish::{Paystack, paystack};
use crate::support::{get_json, scratch_dir};

/// The quickstart's commands: the shell block between its markers.
fn quickstart() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/developer-hub/01-quickstart.md");
    let text = std::fs::read_to_string(path).unwrap();
    let block =
        text.split("<!-- quickstart:begin -->").nth(1).unwrap().split("<!-- quickstart:end -->").next().unwrap();
    block.trim().trim_start_matches("```sh").trim_end_matches("```").to_owned()
}

#[tokio::test]
async fn the_quickstarts_five_steps_run_as_written_against_voltbus_serve() {
    let state = Arc::new(Paystack::default());
    let provider = paystack(Arc::clone(&state)).await;
    let (port, dir) = (free_port(), scratch_dir());
    let mut serve = voltbus()
        .current_dir(&dir)
        .arg("serve")
        .env("VOLTBUS__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("VOLTBUS__PAYSTACK__BASE_URL", format!("http://{provider}"))
        .env("VOLTBUS__PAYSTACK__SECRET_KEY", "sk_test_secret")
        .env("VOLTBUS__PAYSTACK__CURRENCY", "GHS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..150 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() && get_json(addr, "/health").await.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // `voltbus` on the PATH, as a reader who installed it has it.
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_voltbus")).parent().unwrap().to_owned();
    let path = format!("{}:{}", binary.display(), std::env::var("PATH").unwrap_or_default());
    let script = quickstart();
    let run = tokio::task::spawn_blocking(move || {
        voltbus_free_shell()
            .current_dir(dir)
            .args(["-euo", "pipefail", "-c", &script])
            .env("PATH", path)
            .env("API_BASE", format!("http://localhost:{port}"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(run.status.success(), "the quickstart failed:\n{stdout}\n{stderr}");
    // Step 4 opened the portal as the exchanged user; step 5 made one Paystack transaction.
    assert!(stdout.contains("user@example.com"), "{stdout}");
    assert!(stdout.contains("\"authorizationUrl\":\"https://checkout.paystack.com/"), "{stdout}");
    let initialized = state.initialized.lock().unwrap();
    assert_eq!(initialized.len(), 1);
    assert_eq!(
        (&initialized[0].1["amount"], &initialized[0].1["email"]),
        (&serde_json::json!(1200), &serde_json::json!("billing@partner.com"))
    );
}

/// `bash` without the test's own `VOLTBUS…` variables, so the quickstart's `voltbus` sees what a
/// reader's would.
fn voltbus_free_shell() -> std::process::Command {
    let mut command = std::process::Command::new("bash");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("VOLTBUS")) {
        command.env_remove(key);
    }
    command
}
