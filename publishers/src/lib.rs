//! publishers
