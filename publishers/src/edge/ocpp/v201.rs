//! OCPP 2.0.1: not spoken yet; the upgrade does not offer it (see [`super::Version::SPOKEN`]).

use serde_json::Value;

use super::connection::Link;
use super::registry::Order;
use super::rpc::{Code, Refusal};

/// Answers one of the charger's CALLs.
pub(crate) async fn answer(_link: &mut Link<'_>, action: &str, _payload: Value) -> Result<Value, Refusal> {
    Err(Refusal::new(Code::NotImplemented, format!("{action} is not handled")))
}

/// The CALL an order becomes.
pub(crate) fn order(_link: &Link<'_>, _order: Order) -> Option<(&'static str, Value)> {
    None
}
