//! Why signing or verifying failed.

/// Why a signature could not be verified, or a secret could not be made.
///
/// The messages never quote the header or the secret: headers come from the network and may be huge,
/// and secrets must not reach the logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A signature header cannot be parsed; the text says which part is wrong.
    #[error("malformed signature header: {0}")]
    Malformed(String),
    /// The timestamp is older than the tolerance, so the delivery may be a replay.
    #[error("signature timestamp is {age_seconds} seconds old")]
    Expired {
        /// How old the timestamp is, in seconds.
        age_seconds: i64,
    },
    /// The timestamp is further ahead than the tolerance, so it would stay fresh long enough to be replayed.
    #[error("signature timestamp is {ahead_seconds} seconds in the future")]
    InTheFuture {
        /// How far ahead of `now` the timestamp is, in seconds.
        ahead_seconds: i64,
    },
    /// No signature in the header matches the body under this secret.
    #[error("no signature matches")]
    Mismatch,
    /// The secret is not `whsec_` followed by base64 of 24 to 64 bytes; the text says which part is wrong.
    #[error("bad webhook secret: {0}")]
    BadSecret(String),
    /// The system CSPRNG failed, so no secret could be generated.
    #[error("the system random number generator failed")]
    Random,
}
