//! consumers
