//! What can be wrong with bytes that claim to be a voltbus message.

use crate::Version;

/// Why a message could not be decoded. Each variant is a different fault for the dead-letter
/// reason: the sender's bytes, the catalogue, or the contract version.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or JSON without the envelope's required attributes.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The `type` attribute names no type of the catalogue.
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    /// The type is known but a different one than the caller asked for.
    #[error("expected message type `{expected}`, found `{found}`")]
    UnexpectedType {
        /// The type the caller decodes.
        expected: &'static str,
        /// The type the message says it is.
        found: String,
    },
    /// The type is known, its major version is not.
    #[error("unsupported version {found} of `{type_name}` (this build reads major version {supported})")]
    UnsupportedVersion {
        /// The message type.
        type_name: String,
        /// The version the message carries.
        found: Version,
        /// The major version this build understands.
        supported: u16,
    },
    /// The envelope is fine but `data` does not have the type's shape.
    #[error("invalid data for `{type_name}`: {reason}")]
    InvalidData {
        /// The message type.
        type_name: String,
        /// What serde said about the data.
        reason: String,
    },
}

impl DecodeError {
    /// A short machine-readable name for the fault, used as the dead-letter reason header.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Malformed(_) => "malformed",
            DecodeError::UnknownType(_) => "unknown_type",
            DecodeError::UnexpectedType { .. } => "unexpected_type",
            DecodeError::UnsupportedVersion { .. } => "unsupported_version",
            DecodeError::InvalidData { .. } => "invalid_data",
        }
    }
}
