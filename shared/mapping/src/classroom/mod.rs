//! The classroom rules, one file per rule function: each reads top to bottom as a pure
//! function of (record, state read, now) -> (writes, notices). The function crates decode the
//! record, read the state the rule asks for, make the writes and send the notices; the rule
//! itself does no IO and reads no clock, so it is tested without DynamoDB or a queue.
//!
//! - [`moderation`]: chat moderation and fan-out, the `join` / `mute` / `unmute` commands.
//! - [`presence`]: a lifecycle event applied to a client's presence, and its announcements.
//! - [`query`]: the presence query's answer.

pub mod moderation;
pub mod presence;
pub mod query;
