//! Integrations' billing (EVCare seed): usage per month and metric, monthly invoices, and
//! Paystack payments.

pub mod invoices;
pub mod payments;
pub mod usage;
