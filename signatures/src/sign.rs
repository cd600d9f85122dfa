//! Signing a delivery: the seed's `X-Voltbus-Signature` and the Standard Webhooks headers, together.

use base64::Engine as _;
use ring::hmac;

use crate::encoding::BASE64;
use crate::secret::Secret;

/// Header of the seed's format, `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`; lowercase as HTTP/2 requires.
pub const VOLTBUS_SIGNATURE: &str = "x-voltbus-signature";
/// Standard Webhooks header carrying the message id, which is signed so it can serve as an idempotency key.
pub const WEBHOOK_ID: &str = "webhook-id";
/// Standard Webhooks header carrying the unix seconds at which the delivery was signed.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks header carrying `v1,<base64>` entries separated by spaces.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The values of the four signature headers of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Value of [`VOLTBUS_SIGNATURE`].
    pub voltbus_signature: String,
    /// Value of [`WEBHOOK_ID`].
    pub webhook_id: String,
    /// Value of [`WEBHOOK_TIMESTAMP`].
    pub webhook_timestamp: String,
    /// Value of [`WEBHOOK_SIGNATURE`].
    pub webhook_signature: String,
}

impl Signed {
    /// The four headers as `(name, value)` pairs, in a fixed order.
    pub fn headers(&self) -> [(&str, &str); 4] {
        self.headers_named(VOLTBUS_SIGNATURE)
    }

    /// The same, the seed's signature under `seed_header` (an organisation's compatibility
    /// profile: `X-Levy-Signature` for Levy's partners).
    pub fn headers_named<'a>(&'a self, seed_header: &'a str) -> [(&'a str, &'a str); 4] {
        [
            (seed_header, &self.voltbus_signature),
            (WEBHOOK_ID, &self.webhook_id),
            (WEBHOOK_TIMESTAMP, &self.webhook_timestamp),
            (WEBHOOK_SIGNATURE, &self.webhook_signature),
        ]
    }
}

/// Signs `body` with every live secret, which must come newest first.
///
/// Order matters because the seed's verifier reads only the first `v1=`: a partner still on the older
/// secret during a rotation is rejected by that verifier, whatever we send. With no secrets the headers
/// carry no signature, and every verifier rejects them.
pub fn sign(secrets: &[&Secret], message_id: &str, timestamp: i64, body: &[u8]) -> Signed {
    let webhook_timestamp = timestamp.to_string();
    let mut voltbus_signature = format!("t={webhook_timestamp}");
    let mut standard_signatures = Vec::with_capacity(secrets.len());
    for secret in secrets {
        voltbus_signature.push_str(",v1=");
        voltbus_signature.push_str(&hex::encode(voltbus_tag(secret, &webhook_timestamp, body).as_ref()));
        let tag = standard_tag(secret, message_id, &webhook_timestamp, body);
        standard_signatures.push(format!("v1,{}", BASE64.encode(tag.as_ref())));
    }
    Signed {
        voltbus_signature,
        webhook_id: message_id.to_owned(),
        webhook_timestamp,
        webhook_signature: standard_signatures.join(" "),
    }
}

/// HMAC of `"<t>.<body>"`, with `t` exactly as it appears in the header, since that is what the seed hashes.
pub(crate) fn voltbus_tag(secret: &Secret, timestamp: &str, body: &[u8]) -> hmac::Tag {
    let mut context = hmac::Context::with_key(secret.voltbus_key());
    context.update(timestamp.as_bytes());
    context.update(b".");
    context.update(body);
    context.sign()
}

/// HMAC of `"<msg id>.<timestamp>.<body>"`, the Standard Webhooks signed content.
pub(crate) fn standard_tag(secret: &Secret, message_id: &str, timestamp: &str, body: &[u8]) -> hmac::Tag {
    let mut context = hmac::Context::with_key(secret.standard_key());
    context.update(message_id.as_bytes());
    context.update(b".");
    context.update(timestamp.as_bytes());
    context.update(b".");
    context.update(body);
    context.sign()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs of the test vector published with the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MESSAGE_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    fn secret(text: &str) -> Secret {
        Secret::parse(text).expect("test secret")
    }

    #[test]
    fn standard_signature_matches_the_reference_example() {
        let signed = sign(&[&secret(SECRET)], MESSAGE_ID, TIMESTAMP, BODY);
        assert_eq!(signed.webhook_id, "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(signed.webhook_timestamp, "1614265330");
        assert_eq!(signed.webhook_signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    /// Expected value computed apart from this crate, with Node.js:
    /// `crypto.createHmac('sha256', 'whsec_MfKQ...').update('1614265330.{"test": 2432232314}').digest('hex')`.
    #[test]
    fn voltbus_signature_matches_an_independent_hmac() {
        let signed = sign(&[&secret(SECRET)], MESSAGE_ID, TIMESTAMP, BODY);
        assert_eq!(
            signed.voltbus_signature,
            "t=1614265330,v1=2e37df5d4a028c51a7f3133d64ae1e300d2c2c900f1b1d49d4369ad2530f8964"
        );
    }

    #[test]
    fn several_secrets_give_one_signature_each_in_the_given_order() {
        let newest = Secret::generate().expect("CSPRNG");
        let oldest = secret(SECRET);
        let both = sign(&[&newest, &oldest], MESSAGE_ID, TIMESTAMP, BODY);
        let alone_newest = sign(&[&newest], MESSAGE_ID, TIMESTAMP, BODY);
        let alone_oldest = sign(&[&oldest], MESSAGE_ID, TIMESTAMP, BODY);

        let suffix = alone_oldest.voltbus_signature.trim_start_matches("t=1614265330");
        assert_eq!(both.voltbus_signature, format!("{}{suffix}", alone_newest.voltbus_signature));
        assert_eq!(
            both.webhook_signature,
            format!("{} {}", alone_newest.webhook_signature, alone_oldest.webhook_signature)
        );
    }

    #[test]
    fn no_secret_gives_no_signature() {
        let signed = sign(&[], MESSAGE_ID, TIMESTAMP, BODY);
        assert_eq!(signed.voltbus_signature, "t=1614265330");
        assert_eq!(signed.webhook_signature, "");
    }

    #[test]
    fn headers_are_lowercase_names_with_their_values() {
        let signed = sign(&[&secret(SECRET)], MESSAGE_ID, TIMESTAMP, BODY);
        let headers = signed.headers();
        assert_eq!(
            headers.map(|(name, _)| name),
            ["x-voltbus-signature", "webhook-id", "webhook-timestamp", "webhook-signature"]
        );
        assert_eq!(headers[0].1, signed.voltbus_signature);
        assert_eq!(headers[1].1, MESSAGE_ID);
        assert_eq!(headers[2].1, "1614265330");
        assert_eq!(headers[3].1, signed.webhook_signature);
        for (name, _) in headers {
            assert_eq!(name, name.to_ascii_lowercase());
        }
    }
}
