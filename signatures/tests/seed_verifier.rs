//! Runs the Levy Fleets seed's own Node.js verifier on deliveries we sign, since partners migrated
//! from the seed still run it. Needs `node` on PATH: fails rather than skips without it, so a CI
//! image that lost nodejs cannot silently stop checking compatibility.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use signatures::{Secret, sign};

/// The seed's verifier, verbatim, and a wrapper that prints its verdict, so that a crash of the
/// script (also exit code 1) is not mistaken for a rejection.
const SEED_VERIFIER: &str = r#"const crypto = require('crypto')

function verifyWebhook(payload, signature, secret) {
const parts = signature.split(',')
const timestamp = parts.find(p => p.startsWith('t=')).substring(2)
const expectedSig = parts.find(p => p.startsWith('v1=')).substring(3)
const age = Math.floor(Date.now() / 1000) - parseInt(timestamp)
if (age > 300) return false
const signedPayload = `${timestamp}.${JSON.stringify(payload)}`
const computedSig = crypto.createHmac('sha256', secret).update(signedPayload).digest('hex')
return computedSig === expectedSig
}

const [body, signature] = process.argv.slice(2)
const accepted = verifyWebhook(JSON.parse(body), signature, process.env.VOLTBUS_WEBHOOK_SECRET)
console.log(accepted ? 'accepted' : 'rejected')
process.exit(accepted ? 0 : 1)
"#;

/// Deletes the script even when an assertion fails.
struct Script(PathBuf);

impl Script {
    fn write(test: &str) -> Script {
        let path = std::env::temp_dir().join(format!("voltbus-seed-verifier-{}-{test}.js", std::process::id()));
        std::fs::write(&path, SEED_VERIFIER).expect("write the seed verifier to the temp dir");
        Script(path)
    }

    /// The seed's verdict on a delivery: `true` if it accepts.
    fn accepts(&self, secret: &Secret, body: &[u8], voltbus_signature: &str) -> bool {
        let body = std::str::from_utf8(body).expect("test bodies are UTF-8");
        let output = match Command::new("node")
            .arg(&self.0)
            .arg(body)
            .arg(voltbus_signature)
            .env("VOLTBUS_WEBHOOK_SECRET", secret.expose())
            .output()
        {
            Ok(output) => output,
            Err(error) if error.kind() == ErrorKind::NotFound => panic!(
                "`node` is not on PATH: install nodejs (e.g. `apt-get install -y nodejs`) to run the Levy Fleets \
                 seed verifier; this test checks compatibility with it and must not be skipped"
            ),
            Err(error) => panic!("could not run node: {error}"),
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        match (output.status.code(), stdout.trim()) {
            (Some(0), "accepted") => true,
            (Some(1), "rejected") => false,
            (code, _) => panic!(
                "the seed verifier crashed (exit {code:?}):\nstdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn now() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit in i64")
}

/// A compact JSON body, as the publishers send, with non-ASCII text to check both sides hash UTF-8.
fn body(soc_percent: u32) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": "vehicle.battery_low",
        "vehicle_id": "veh_42",
        "driver": "Zoë Łukasik",
        "soc_percent": soc_percent,
        "tags": ["fleet-a", "night"],
    }))
    .expect("serialize test body")
}

#[test]
fn the_seed_verifier_accepts_our_signature_and_rejects_a_tampered_body() {
    let script = Script::write("accepts");
    let secret = Secret::generate().expect("CSPRNG");
    let signed = sign(&[&secret], "msg_seed_1", now(), &body(12));

    assert!(script.accepts(&secret, &body(12), &signed.voltbus_signature), "seed rejected our signature");
    assert!(!script.accepts(&secret, &body(13), &signed.voltbus_signature), "seed accepted a tampered body");
    let other = Secret::generate().expect("CSPRNG");
    assert!(!script.accepts(&other, &body(12), &signed.voltbus_signature), "seed accepted a wrong secret");
}

/// Pins the seed's limit during a rotation: it reads only the first `v1=`, so the newest secret
/// must come first, and a partner still holding the older secret is rejected by the seed verifier.
#[test]
fn during_a_rotation_the_seed_verifier_accepts_only_the_first_secret() {
    let script = Script::write("rotation");
    let (newest, oldest) = (Secret::generate().expect("CSPRNG"), Secret::generate().expect("CSPRNG"));
    let signed = sign(&[&newest, &oldest], "msg_seed_2", now(), &body(12));

    assert!(script.accepts(&newest, &body(12), &signed.voltbus_signature), "seed rejected the newest secret");
    assert!(!script.accepts(&oldest, &body(12), &signed.voltbus_signature), "seed now reads every v1=");
}
