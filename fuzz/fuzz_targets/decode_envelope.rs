//! Every message voltbus takes off a broker is decoded by `schemas`: in structured mode (the
//! whole envelope as JSON: RabbitMQ, the embedded transport) and in binary mode (attributes in
//! headers, data in the body: NATS). Whatever the bytes, decoding answers a typed error, never a
//! panic, and what decodes encodes to something that decodes to the same type again.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = schemas::decode_any(data) {
        let again = schemas::decode_any(&envelope.encode()).expect("an encoded envelope decodes");
        assert_eq!(again.type_name, envelope.type_name);
        assert_eq!(again.id, envelope.id);
    }
    // Binary mode: `name=value` lines as the headers, then a NUL, then the body.
    if let Some(split) = data.iter().position(|b| *b == 0) {
        let (head, body) = (String::from_utf8_lossy(&data[..split]), &data[split + 1..]);
        let headers: Vec<(&str, &str)> = head.lines().filter_map(|line| line.split_once('=')).collect();
        let attribute = |name: &str| headers.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned());
        let _ = schemas::decode_any_binary(attribute, body);
    }
});
