//! Verifying a delivery on the receiving side, in either format.

use base64::Engine as _;
use subtle::{Choice, ConstantTimeEq};

use crate::encoding::BASE64;
use crate::error::SignatureError;
use crate::secret::Secret;
use crate::sign::{standard_tag, voltbus_tag};

/// Five minutes, what both the seed's verifier and the Standard Webhooks libraries allow.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

/// Verifies an `X-Voltbus-Signature` header: fresh within `tolerance_seconds` either way, and any `v1=` matching.
///
/// Any entry may match, not only the first as in the seed, so a receiver on either secret of a rotation
/// accepts. Entries of other schemes (`v0=`, a future `v2=`) are ignored, as they are meant for other verifiers.
pub fn verify(
    secret: &Secret,
    voltbus_signature: &str,
    body: &[u8],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let header = VoltbusHeader::parse(voltbus_signature)?;
    check_freshness(parse_timestamp(header.timestamp)?, now, tolerance_seconds)?;
    let expected = voltbus_tag(secret, header.timestamp, body);
    any_matches(expected.as_ref(), &header.signatures)
}

/// Verifies the Standard Webhooks headers: fresh within `tolerance_seconds` either way, and any `v1,` matching.
///
/// Entries of other versions (such as the asymmetric `v1a,`) are ignored, as the specification asks.
pub fn verify_standard(
    secret: &Secret,
    webhook_id: &str,
    webhook_timestamp: &str,
    webhook_signature: &str,
    body: &[u8],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    if webhook_id.is_empty() {
        return Err(SignatureError::Malformed("empty webhook-id".to_owned()));
    }
    let signatures = parse_standard_signatures(webhook_signature)?;
    check_freshness(parse_timestamp(webhook_timestamp)?, now, tolerance_seconds)?;
    let expected = standard_tag(secret, webhook_id, webhook_timestamp, body);
    any_matches(expected.as_ref(), &signatures)
}

/// The parts of an `X-Voltbus-Signature` header this crate checks.
struct VoltbusHeader<'a> {
    /// Kept as text because the signed content holds it exactly as sent.
    timestamp: &'a str,
    signatures: Vec<Vec<u8>>,
}

impl<'a> VoltbusHeader<'a> {
    fn parse(header: &'a str) -> Result<VoltbusHeader<'a>, SignatureError> {
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for entry in header.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            let (scheme, value) =
                entry.split_once('=').ok_or_else(|| malformed("an entry is not of the form `key=value`"))?;
            match scheme {
                "t" if timestamp.replace(value).is_some() => return Err(malformed("more than one `t=`")),
                "t" => {}
                "v1" => signatures.push(hex::decode(value).map_err(|_| malformed("a `v1=` is not hex"))?),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or_else(|| malformed("no `t=`"))?;
        if signatures.is_empty() {
            return Err(malformed("no `v1=`"));
        }
        Ok(VoltbusHeader { timestamp, signatures })
    }
}

fn parse_standard_signatures(header: &str) -> Result<Vec<Vec<u8>>, SignatureError> {
    let mut signatures = Vec::new();
    for entry in header.split_whitespace() {
        let (version, value) =
            entry.split_once(',').ok_or_else(|| malformed("an entry is not of the form `version,signature`"))?;
        if version == "v1" {
            signatures.push(BASE64.decode(value).map_err(|_| malformed("a `v1,` signature is not base64"))?);
        }
    }
    if signatures.is_empty() {
        return Err(malformed("no `v1,` signature"));
    }
    Ok(signatures)
}

/// Digits only: `str::parse` alone would accept a sign, which neither format ever sends.
fn parse_timestamp(text: &str) -> Result<i64, SignatureError> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(malformed("the timestamp is not unix seconds"));
    }
    text.parse().map_err(|_| malformed("the timestamp is out of range"))
}

/// Rejects the future too: a timestamp far ahead would keep a captured delivery replayable for longer.
fn check_freshness(timestamp: i64, now: i64, tolerance_seconds: i64) -> Result<(), SignatureError> {
    let age_seconds = now.saturating_sub(timestamp);
    if age_seconds > tolerance_seconds {
        return Err(SignatureError::Expired { age_seconds });
    }
    let ahead_seconds = age_seconds.saturating_neg();
    if ahead_seconds > tolerance_seconds {
        return Err(SignatureError::InTheFuture { ahead_seconds });
    }
    Ok(())
}

/// Compares every candidate in constant time, without stopping at a match, so timing tells nothing.
fn any_matches(expected: &[u8], candidates: &[Vec<u8>]) -> Result<(), SignatureError> {
    let matched = candidates.iter().fold(Choice::from(0), |matched, candidate| matched | expected.ct_eq(candidate));
    if bool::from(matched) { Ok(()) } else { Err(SignatureError::Mismatch) }
}

fn malformed(reason: &str) -> SignatureError {
    SignatureError::Malformed(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::sign;

    const NOW: i64 = 1_700_000_000;
    const MESSAGE_ID: &str = "msg_2bXhQpW9";
    const BODY: &[u8] = br#"{"type":"vehicle.battery_low","vehicle_id":"veh_42","soc_percent":12}"#;
    const TAMPERED: &[u8] = br#"{"type":"vehicle.battery_low","vehicle_id":"veh_42","soc_percent":13}"#;

    fn secret() -> Secret {
        Secret::generate().expect("CSPRNG")
    }

    fn check(secret: &Secret, timestamp: i64, body: &[u8], signed_body: &[u8]) -> [Result<(), SignatureError>; 2] {
        let signed = sign(&[secret], MESSAGE_ID, timestamp, signed_body);
        both(secret, &signed, body)
    }

    fn both(secret: &Secret, signed: &crate::Signed, body: &[u8]) -> [Result<(), SignatureError>; 2] {
        [
            verify(secret, &signed.voltbus_signature, body, NOW, DEFAULT_TOLERANCE_SECONDS),
            verify_standard(
                secret,
                &signed.webhook_id,
                &signed.webhook_timestamp,
                &signed.webhook_signature,
                body,
                NOW,
                DEFAULT_TOLERANCE_SECONDS,
            ),
        ]
    }

    fn is_malformed(result: Result<(), SignatureError>) -> bool {
        matches!(result, Err(SignatureError::Malformed(_)))
    }

    #[test]
    fn round_trip_in_both_formats() {
        let secret = secret();
        assert_eq!(check(&secret, NOW, BODY, BODY), [Ok(()), Ok(())]);
    }

    #[test]
    fn the_reference_example_verifies() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("reference secret");
        let result = verify_standard(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            br#"{"test": 2432232314}"#,
            1614265330,
            DEFAULT_TOLERANCE_SECONDS,
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn a_tampered_body_is_a_mismatch() {
        let secret = secret();
        assert_eq!(check(&secret, NOW, TAMPERED, BODY), [Err(SignatureError::Mismatch), Err(SignatureError::Mismatch)]);
    }

    #[test]
    fn a_wrong_secret_is_a_mismatch() {
        let signed = sign(&[&secret()], MESSAGE_ID, NOW, BODY);
        assert_eq!(both(&secret(), &signed, BODY), [Err(SignatureError::Mismatch), Err(SignatureError::Mismatch)]);
    }

    #[test]
    fn a_tampered_message_id_or_timestamp_is_a_mismatch() {
        let secret = secret();
        let signed = sign(&[&secret], MESSAGE_ID, NOW, BODY);
        let other_id = crate::Signed { webhook_id: "msg_other".to_owned(), ..signed.clone() };
        assert_eq!(both(&secret, &other_id, BODY)[1], Err(SignatureError::Mismatch));
        let moved = NOW - 1;
        let other_time = crate::Signed {
            voltbus_signature: signed.voltbus_signature.replace(&NOW.to_string(), &moved.to_string()),
            webhook_timestamp: moved.to_string(),
            ..signed
        };
        assert_eq!(both(&secret, &other_time, BODY), [Err(SignatureError::Mismatch), Err(SignatureError::Mismatch)]);
    }

    #[test]
    fn an_old_timestamp_is_expired() {
        let secret = secret();
        let expired = Err(SignatureError::Expired { age_seconds: 301 });
        assert_eq!(check(&secret, NOW - 301, BODY, BODY), [expired.clone(), expired]);
        assert_eq!(check(&secret, NOW - 300, BODY, BODY), [Ok(()), Ok(())]);
    }

    #[test]
    fn a_future_timestamp_is_rejected() {
        let secret = secret();
        let ahead = Err(SignatureError::InTheFuture { ahead_seconds: 301 });
        assert_eq!(check(&secret, NOW + 301, BODY, BODY), [ahead.clone(), ahead]);
        assert_eq!(check(&secret, NOW + 300, BODY, BODY), [Ok(()), Ok(())]);
    }

    #[test]
    fn extreme_clocks_do_not_overflow() {
        let secret = secret();
        let signed = sign(&[&secret], MESSAGE_ID, i64::MAX, BODY);
        assert!(matches!(
            verify(&secret, &signed.voltbus_signature, BODY, i64::MIN, 0),
            Err(SignatureError::InTheFuture { ahead_seconds: i64::MAX })
        ));
        assert_eq!(verify(&secret, &signed.voltbus_signature, BODY, 0, i64::MAX), Ok(()));
    }

    #[test]
    fn both_secrets_of_a_rotation_verify() {
        let (newest, oldest) = (secret(), secret());
        let signed = sign(&[&newest, &oldest], MESSAGE_ID, NOW, BODY);
        assert_eq!(both(&newest, &signed, BODY), [Ok(()), Ok(())]);
        assert_eq!(both(&oldest, &signed, BODY), [Ok(()), Ok(())]);
        assert_eq!(both(&secret(), &signed, BODY), [Err(SignatureError::Mismatch), Err(SignatureError::Mismatch)]);
    }

    #[test]
    fn other_schemes_are_ignored() {
        let secret = secret();
        let signed = sign(&[&secret], MESSAGE_ID, NOW, BODY);
        let voltbus = format!("v0=abc, {} ,v2=whatever,", signed.voltbus_signature);
        assert_eq!(verify(&secret, &voltbus, BODY, NOW, DEFAULT_TOLERANCE_SECONDS), Ok(()));
        let standard = format!("v1a,c2lnbmF0dXJl  {}", signed.webhook_signature);
        let result =
            verify_standard(&secret, MESSAGE_ID, &NOW.to_string(), &standard, BODY, NOW, DEFAULT_TOLERANCE_SECONDS);
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn malformed_voltbus_headers() {
        let secret = secret();
        let good = sign(&[&secret], MESSAGE_ID, NOW, BODY).voltbus_signature;
        let v1 = good.split_once(",v1=").map(|(_, v1)| v1).expect("signed header has a v1");
        let cases = [
            String::new(),
            "t=abc,v1=00".to_owned(),
            format!("t={NOW}"),
            format!("v1={v1}"),
            format!("t={NOW},t={NOW},v1={v1}"),
            format!("t={NOW},v1=zz"),
            format!("t={NOW},v1={v1}0"),
            format!("t=-{NOW},v1={v1}"),
            format!("t=+{NOW},v1={v1}"),
            format!("t=,v1={v1}"),
            format!("t=99999999999999999999,v1={v1}"),
            format!("t {NOW},v1={v1}"),
            "garbage".to_owned(),
        ];
        for case in cases {
            let result = verify(&secret, &case, BODY, NOW, DEFAULT_TOLERANCE_SECONDS);
            assert!(is_malformed(result.clone()), "{case:?}: {result:?}");
        }
    }

    #[test]
    fn malformed_standard_headers() {
        let secret = secret();
        let good = sign(&[&secret], MESSAGE_ID, NOW, BODY);
        let ts = good.webhook_timestamp.as_str();
        let sig = good.webhook_signature.as_str();
        let cases = [
            ("", ts, sig),
            (MESSAGE_ID, "", sig),
            (MESSAGE_ID, "abc", sig),
            (MESSAGE_ID, "-1700000000", sig),
            (MESSAGE_ID, ts, ""),
            (MESSAGE_ID, ts, "v1"),
            (MESSAGE_ID, ts, "v1,!!!"),
            (MESSAGE_ID, ts, "v1a,c2lnbmF0dXJl"),
        ];
        for (id, timestamp, signature) in cases {
            let result = verify_standard(&secret, id, timestamp, signature, BODY, NOW, DEFAULT_TOLERANCE_SECONDS);
            assert!(is_malformed(result.clone()), "{id:?} {timestamp:?} {signature:?}: {result:?}");
        }
    }

    #[test]
    fn a_wrong_length_signature_is_a_mismatch_not_a_panic() {
        let secret = secret();
        let short = format!("t={NOW},v1=00");
        assert_eq!(verify(&secret, &short, BODY, NOW, DEFAULT_TOLERANCE_SECONDS), Err(SignatureError::Mismatch));
        let result = verify_standard(&secret, MESSAGE_ID, &NOW.to_string(), "v1,AA==", BODY, NOW, 300);
        assert_eq!(result, Err(SignatureError::Mismatch));
    }
}
