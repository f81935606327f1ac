//! The one DynamoDB store layer: every table's adapter, its attribute names ([`attrs`]), one
//! error type ([`StoreError`]) and the shared helpers (attribute values, the paginated
//! partition Query, the pacing of unprocessed batch items). Used by every function, the CLI
//! and the local stack. The adapters read and write; the rules that decide what to write live
//! in the pure core (`mapping::classroom`, `signin::Revocations::check`), not here.
//!
//! # Layout
//! - [`attrs`]: every attribute name and key prefix, with the item layouts. The template and
//!   the other readers rely on them.
//! - [`tokens`]: [`TokenTable`]: record an issued token, its status, revoke one token, revoke
//!   every token of a client, the revocations of one sign-in (one `BatchGetItem`) and all of
//!   them (a Scan, for the local stack's revocations file).
//! - [`enrollment`]: [`EnrollmentTable`]: enroll a client in rooms (`BatchWriteItem`), the
//!   rooms of a client (Query).
//! - [`presence`]: [`PresenceStore`]: a client's presence items (its channels, the head item
//!   with the version lock and its rooms) in one Query, and one event's write (channel,
//!   attendance item, version bump) in one transaction whose version conflict is an outcome
//!   ([`WriteOutcome::Conflict`]), not an error.
//! - [`moderation`]: [`ModerationStore`]: what the moderation rule reads (a chat's standing in
//!   one `BatchGetItem`, a command's enrollment, a join's enrollment and rooms, a room's
//!   members) and writes (a chat's count in its rate window, one atomic `UpdateItem`; a
//!   conditional mute change; a join in one transaction, conditioned on the rooms cap).
//! - [`StoreError`]: the one error: the operation, the table and the SDK's message.
//!
//! Times are arguments (seconds, or ms where the layout says so): the adapters never read the
//! clock.

pub mod attrs;
pub mod enrollment;
mod error;
mod item;
pub mod moderation;
pub mod presence;
pub mod tokens;

pub use enrollment::{Enrollment, EnrollmentTable};
pub use error::StoreError;
pub use moderation::ModerationStore;
pub use presence::{PresenceStore, WriteOutcome};
pub use tokens::{TokenRecord, TokenTable};

/// The constructor, name and error helper every table adapter (a client and a table name)
/// shares: `table_adapter!(TokenTable, "TOKEN_TABLE")`.
#[macro_export]
#[doc(hidden)]
macro_rules! table_adapter {
    ($adapter:ident, $var:literal) => {
        impl $adapter {
            #[doc = concat!("The adapter for `table` (the `", $var, "` variable).")]
            pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
                Self {
                    client,
                    table: table.into(),
                }
            }

            /// The table name.
            pub fn table_name(&self) -> &str {
                &self.table
            }

            fn err(&self, op: &'static str, message: impl Into<String>) -> $crate::StoreError {
                $crate::StoreError::new(op, &self.table, message)
            }
        }
    };
}
