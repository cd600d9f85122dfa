//! End-to-end tests of the `voltbus` binary and library against the real PostgreSQL, RabbitMQ and
//! NATS of this machine (`scripts/test.sh` makes sure they run). One test binary, a module per area.

mod support;

mod amqp;
mod binary;
mod chargers;
mod charging;
mod cluster;
mod compatibility;
mod console;
mod embedded;
mod faults;
mod fleet;
mod integrations;
mod isolation;
mod journey;
mod marketplace;
mod mobile;
mod nats;
mod ocpp;
mod operations;
mod otlp;
mod partner;
mod postgres;
#[path = "../../bus/tests/it/private_nats.rs"]
mod private_nats;
mod private_postgres;
#[path = "../../bus/tests/it/private_rabbit.rs"]
mod private_rabbit;
mod production;
mod quickstart;
mod replenish;
mod rides;
mod roles;
mod settings;
mod subscriptions;
mod traces;
mod webhooks;
mod zones;
