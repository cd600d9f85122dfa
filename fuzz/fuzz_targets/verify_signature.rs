//! The webhook signature verifiers take headers a stranger wrote. Whatever they hold, the answer
//! is a typed error, never a panic; and a signature `sign` made always verifies, under both
//! schemes.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use signatures::{DEFAULT_TOLERANCE_SECONDS, Secret};

fn secret() -> &'static Secret {
    static SECRET: OnceLock<Secret> = OnceLock::new();
    SECRET.get_or_init(|| Secret::generate().expect("the system's random generator"))
}

fuzz_target!(|input: (&str, &str, &str, &str, &[u8], i64)| {
    let (voltbus_header, id, timestamp, standard_header, body, now) = input;
    let secret = secret();
    let _ = signatures::verify(secret, voltbus_header, body, now, DEFAULT_TOLERANCE_SECONDS);
    let _ = signatures::verify_standard(secret, id, timestamp, standard_header, body, now, DEFAULT_TOLERANCE_SECONDS);
    let _ = Secret::parse(voltbus_header);

    // Signing happens at the wall clock: after 1970 (a `t=` of a negative time is refused, as
    // the seed's verifier would refuse it).
    if !id.is_empty() && now >= 0 {
        let signed = signatures::sign(&[secret], id, now, body);
        let [(_, voltbus), _, (_, stamp), (_, standard)] = signed.headers();
        signatures::verify(secret, voltbus, body, now, DEFAULT_TOLERANCE_SECONDS).expect("own signature verifies");
        signatures::verify_standard(secret, id, stamp, standard, body, now, DEFAULT_TOLERANCE_SECONDS)
            .expect("own standard signature verifies");
    }
});
