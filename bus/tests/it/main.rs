//! The bus against the real RabbitMQ, PostgreSQL and NATS. Each test has its own consumer group
//! (its own queues), tenant and database, so tests run in parallel; `conformance` runs one suite
//! against every transport.

mod support;

mod amqp_runtime;
mod broker_restart;
mod conformance;
mod nats_accounts;
mod nodes;
mod outbox;
mod private_nats;
mod private_rabbit;
mod retention;
