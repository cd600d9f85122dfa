//! OCPP-J's RPC framing, the same in 1.6 and 2.0.1: `[2, id, action, payload]` (CALL),
//! `[3, id, payload]` (CALLRESULT), `[4, id, code, description, details]` (CALLERROR), and the
//! error codes each version spells its own way.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Version;

/// A frame a charger sent.
#[derive(Debug)]
pub(crate) enum Frame {
    /// It asks us something.
    Call { id: String, action: String, payload: Value },
    /// It answers a CALL of ours.
    Result { id: String, payload: Value },
    /// It refuses a CALL of ours.
    Error { id: String, code: String, description: String },
}

/// Why a charger's CALL was not answered with a result, as OCPP-J names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Code {
    /// The action is not one we know.
    NotImplemented,
    /// Not JSON, not a frame, or a payload that is not the action's structure (an unknown field).
    Format,
    /// A field of the wrong JSON type.
    Type,
    /// A value out of the field's range: an unknown enumeration value, too long, negative.
    Property,
    /// A required field missing.
    Occurrence,
    /// The frame is well formed but breaks the protocol (a second CALL before we answered).
    Protocol,
    /// We could not do it now (the bus did not store it); the charger tries again.
    Internal,
}

impl Code {
    /// The code as `version` spells it (1.6's `FormationViolation` and `OccurenceConstraintViolation`).
    pub(crate) fn name(self, version: Version) -> &'static str {
        match (self, version) {
            (Code::NotImplemented, _) => "NotImplemented",
            (Code::Format, Version::V16) => "FormationViolation",
            (Code::Format, Version::V201) => "FormatViolation",
            (Code::Type, _) => "TypeConstraintViolation",
            (Code::Property, _) => "PropertyConstraintViolation",
            (Code::Occurrence, Version::V16) => "OccurenceConstraintViolation",
            (Code::Occurrence, Version::V201) => "OccurrenceConstraintViolation",
            (Code::Protocol, _) => "ProtocolError",
            (Code::Internal, _) => "InternalError",
        }
    }
}

/// A CALLERROR to send: its code and why.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub code: Code,
    pub description: String,
}

impl Refusal {
    pub(crate) fn new(code: Code, description: impl Into<String>) -> Self {
        Self { code, description: description.into() }
    }
}

/// A frame we could not read, with the id to answer it under (empty when none could be read).
#[derive(Debug)]
pub(crate) struct Unreadable {
    pub id: String,
    pub refusal: Refusal,
}

/// Reads one text frame. Anything but a well-formed frame is an [`Unreadable`] to answer with a
/// CALLERROR: the connection stays.
pub(crate) fn parse(text: &str) -> Result<Frame, Unreadable> {
    let unreadable = |id: &str, code, why: &str| Unreadable { id: id.to_owned(), refusal: Refusal::new(code, why) };
    let value: Value = serde_json::from_str(text).map_err(|_| unreadable("", Code::Format, "not JSON"))?;
    let Value::Array(mut items) = value else {
        return Err(unreadable("", Code::Format, "a frame is a JSON array"));
    };
    let id = match items.get(1) {
        Some(Value::String(id)) if id.len() <= 36 => id.clone(),
        _ => return Err(unreadable("", Code::Format, "the second element is the message id, a string of up to 36")),
    };
    let kind = items.first().and_then(Value::as_u64);
    match (kind, items.len()) {
        (Some(2), 4) => {
            let payload = items.pop().unwrap_or_default();
            let Some(Value::String(action)) = items.pop() else {
                return Err(unreadable(&id, Code::Format, "a CALL's third element is the action's name"));
            };
            Ok(Frame::Call { id, action, payload })
        }
        (Some(3), 3) => Ok(Frame::Result { id, payload: items.pop().unwrap_or_default() }),
        (Some(4), 4 | 5) => {
            let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or_default().to_owned();
            Ok(Frame::Error { code: text(items.get(2)), description: text(items.get(3)), id })
        }
        (Some(2..=4), _) => Err(unreadable(&id, Code::Format, "the frame has the wrong number of elements")),
        _ => Err(unreadable(&id, Code::Protocol, "the message type is 2 (CALL), 3 (CALLRESULT) or 4 (CALLERROR)")),
    }
}

/// Reads an action's payload into its type; a payload off the action's schema is the refusal
/// OCPP names for what is wrong with it.
pub(crate) fn payload<T: DeserializeOwned>(payload: Value) -> Result<T, Refusal> {
    if !payload.is_object() {
        return Err(Refusal::new(Code::Format, "the payload is a JSON object"));
    }
    serde_path_to_error::deserialize(payload).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        // serde's own wording of each kind of data error (`de::Error`'s provided methods).
        let code = if inner.starts_with("missing field") {
            Code::Occurrence
        } else if inner.starts_with("invalid type") {
            Code::Type
        } else if inner.starts_with("unknown field") {
            Code::Format
        } else {
            Code::Property
        };
        Refusal::new(code, if path == "." { inner } else { format!("{path}: {inner}") })
    })
}

/// `[3, id, payload]`.
pub(crate) fn result(id: &str, payload: Value) -> String {
    json!([3, id, payload]).to_string()
}

/// `[4, id, code, description, {}]`.
pub(crate) fn error(id: &str, refusal: &Refusal, version: Version) -> String {
    json!([4, id, refusal.code.name(version), refusal.description, {}]).to_string()
}

/// `[2, id, action, payload]`.
pub(crate) fn call(id: &str, action: &str, payload: &Value) -> String {
    json!([2, id, action, payload]).to_string()
}

/// A string of at most `MAX` characters (OCPP's `CiString<n>Type`), refused as out of range when
/// longer.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub(crate) struct Text<const MAX: usize>(pub String);

impl<'de, const MAX: usize> serde::Deserialize<'de> for Text<MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.chars().count() > MAX {
            return Err(serde::de::Error::invalid_length(text.chars().count(), &format!("at most {MAX}").as_str()));
        }
        Ok(Self(text))
    }
}

/// A string a schema closes to these values: another is out of the field's range.
macro_rules! closed {
    ($name:ident: $($value:literal),+ $(,)?) => {
        #[doc = concat!("OCPP's `", stringify!($name), "` values.")]
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub(crate) struct $name(pub String);

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                const VALUES: &[&str] = &[$($value),+];
                let value = <String as serde::Deserialize>::deserialize(deserializer)?;
                if VALUES.contains(&value.as_str()) {
                    Ok(Self(value))
                } else {
                    Err(serde::de::Error::unknown_variant(&value, VALUES))
                }
            }
        }
    };
}
pub(crate) use closed;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Sample {
        connector_id: u32,
        tag: Text<5>,
        status: Option<Kind>,
    }

    #[derive(Debug, serde::Deserialize)]
    enum Kind {
        Available,
    }

    fn code_of(value: Value) -> Code {
        payload::<Sample>(value).expect_err("refused").code
    }

    #[test]
    fn each_kind_of_schema_violation_has_its_code() {
        assert!(payload::<Sample>(json!({"connectorId": 1, "tag": "abc"})).is_ok());
        assert_eq!(code_of(json!({"tag": "abc"})), Code::Occurrence);
        assert_eq!(code_of(json!({"connectorId": "1", "tag": "abc"})), Code::Type);
        assert_eq!(code_of(json!({"connectorId": 1, "tag": "abc", "x": 1})), Code::Format);
        assert_eq!(code_of(json!({"connectorId": 1, "tag": "abcdef"})), Code::Property);
        assert_eq!(code_of(json!({"connectorId": -1, "tag": "abc"})), Code::Property);
        assert_eq!(code_of(json!({"connectorId": 1, "tag": "abc", "status": "Broken"})), Code::Property);
        assert_eq!(code_of(json!([1])), Code::Format);
        assert_eq!(Code::Format.name(Version::V16), "FormationViolation");
        assert_eq!(Code::Occurrence.name(Version::V201), "OccurrenceConstraintViolation");
    }

    #[test]
    fn frames_are_read_or_refused_with_their_id() {
        assert!(matches!(parse(r#"[2,"a","Heartbeat",{}]"#), Ok(Frame::Call { .. })));
        assert!(matches!(parse(r#"[3,"a",{}]"#), Ok(Frame::Result { .. })));
        assert!(matches!(parse(r#"[4,"a","NotSupported","no",{}]"#), Ok(Frame::Error { .. })));
        let refused = parse(r#"[2,"b","Heartbeat"]"#).expect_err("short");
        assert_eq!((refused.id.as_str(), refused.refusal.code), ("b", Code::Format));
        assert_eq!(parse("nope").expect_err("not json").refusal.code, Code::Format);
        assert_eq!(parse(r#"[7,"c",{}]"#).expect_err("kind").refusal.code, Code::Protocol);
    }
}
