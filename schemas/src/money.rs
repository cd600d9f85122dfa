//! Money: integer minor units with an ISO-4217 currency. Never floats.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An amount in the currency's minor units (cents, pesewas, möngö), never a float.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Money {
    /// Minor units; negative only where a field says so (refunds, adjustments).
    pub amount: i64,
    /// ISO-4217 alphabetic code.
    pub currency: Currency,
}

impl Money {
    /// An amount in minor units of a currency.
    pub const fn new(amount: i64, currency: Currency) -> Self {
        Self { amount, currency }
    }
}

/// An ISO-4217 alphabetic currency code: three upper-case ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

/// Why a string is not a currency code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("currency `{0}` is not an ISO-4217 code (three upper-case letters)")]
pub struct CurrencyError(pub String);

impl Currency {
    /// Euro.
    pub const EUR: Currency = Currency(*b"EUR");
    /// US dollar.
    pub const USD: Currency = Currency(*b"USD");
    /// Ghanaian cedi (the EVCare seed's Paystack example).
    pub const GHS: Currency = Currency(*b"GHS");
    /// Mongolian tögrög (the EVM seed's market).
    pub const MNT: Currency = Currency(*b"MNT");
    /// Brazilian real (the Levy Fleets seed's market).
    pub const BRL: Currency = Currency(*b"BRL");

    /// Validates a three-letter code.
    pub fn new(code: &str) -> Result<Self, CurrencyError> {
        match code.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Self([*a, *b, *c])),
            _ => Err(CurrencyError(code.to_owned())),
        }
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl TryFrom<String> for Currency {
    type Error = CurrencyError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl JsonSchema for Currency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Currency".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO-4217 alphabetic code" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_validated() {
        assert_eq!(Currency::new("GHS").unwrap(), Currency::GHS);
        for bad in ["", "eur", "EURO", "E1R", "€"] {
            assert!(Currency::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_refuses_floats() {
        let err = serde_json::from_str::<Money>(r#"{"amount": 12.5, "currency": "EUR"}"#);
        assert!(err.is_err());
        let ok: Money = serde_json::from_str(r#"{"amount": 1250, "currency": "EUR"}"#).unwrap();
        assert_eq!(ok, Money::new(1250, Currency::EUR));
    }
}
