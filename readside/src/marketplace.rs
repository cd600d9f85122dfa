//! Marketplace partners (Etvas): what their commands answer.

use schemars::JsonSchema;
use schemas::marketplace::IdPair;
use serde::{Deserialize, Serialize};

/// A marketplace command's answer: the user's ids, and the product's for product events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Mapping {
    /// The marketplace's user id and ours.
    pub user: IdPair,
    /// The marketplace's product id and ours (the purchase's number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<IdPair>,
}
