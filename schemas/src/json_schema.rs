//! JSON Schema of every message type, so partners in other languages can validate what they get.
//! The committed copies live in `schemas/json/`; a test fails when they are stale.

use serde_json::{Value, json};

use crate::{Descriptor, Envelope, Message};

/// The schema of an envelope carrying `M`, with its `type` and major version pinned.
pub fn envelope_schema<M: Message>() -> schemars::Schema {
    let mut schema = schemars::schema_for!(Envelope<M>);
    schema.insert("$id".into(), Value::String(format!("urn:voltbus:schema:{}:v{}", M::TYPE, M::VERSION.major)));
    schema.insert("title".into(), Value::String(M::TYPE.to_owned()));
    schema.insert("x-voltbus-kind".into(), Value::String(M::KIND.as_str().to_owned()));
    schema.insert("x-voltbus-domain".into(), Value::String(M::DOMAIN.as_str().to_owned()));
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert("type".into(), json!({ "const": M::TYPE }));
        properties.insert(
            "dataversion".into(),
            json!({ "type": "string", "pattern": format!("^{}\\.[0-9]+$", M::VERSION.major) }),
        );
    }
    schema
}

/// File name of a type's schema under `schemas/json/`.
pub fn schema_file_name(descriptor: &Descriptor) -> String {
    format!("{}.v{}.json", descriptor.type_name, descriptor.version.major)
}
