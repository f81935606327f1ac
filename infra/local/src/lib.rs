//! The cloud glue of §2 emulated on one machine (§7), between the real parts (Mosquitto
//! with the classroom broker plugin, moto's SQS and DynamoDB, the functions' own handlers).
//!
//! # Layout
//! - [`runner`]: the SQS event source of Lambda: long-polls a queue, hands batches to a
//!   function's `handle`, deletes only the records that succeeded, leaves the rest to the
//!   visibility timeout and the redrive policy. Binary: `local-runner`.
//! - [`bridge`]: the IoT rules' SQS actions: takes the records and lifecycle events the broker
//!   plugin republishes on `$classroom/...` and sends them to the uplink and presence queues,
//!   acknowledging each MQTT message only after SQS accepted it. Binary: `rules-bridge`.
//! - [`api`]: API Gateway's part: the token issuer and the presence query over HTTP on
//!   loopback, calling the functions' own handlers, and the export of the issuer's revocations
//!   to the file the broker plugin reads. Binary: `local-api`.
//! - [`shutdown`]: SIGINT/SIGTERM as a watch channel, so loops finish their batch and stop.

pub mod api;
pub mod bridge;
pub mod runner;
pub mod shutdown;
