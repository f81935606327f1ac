//! DynamoDB adapters of token sign-in (issue 9): the TokenTable (issued tokens,
//! revocations) and the EnrollmentTable (which rooms a client may join and chat in). Used by
//! the issuer (`functions/token`), the authorizer, moderation and the local stack; the pure
//! rules they feed (`signin::Revocations::check`) live in `signin`.
//!
//! # Layout
//! - [`attrs`]: every attribute name and key prefix, with the item layouts. The template and
//!   the other readers rely on them.
//! - [`tokens`]: [`TokenTable`]: record an issued token, its status, revoke one token, revoke
//!   every token of a client, the revocations of one sign-in (one `BatchGetItem`) and all of
//!   them (a Scan, for the local stack's revocations file).
//! - [`enrollment`]: [`EnrollmentTable`]: enroll a client in rooms (`BatchWriteItem`), the
//!   rooms of a client (Query).
//! - [`StoreError`]: the one error: the operation, the table and the SDK's message.
//!
//! Times are arguments (seconds, or ms where the layout says so): the adapters never read the
//! clock.

pub mod attrs;
pub mod enrollment;
mod error;
mod item;
pub mod tokens;

pub use enrollment::{Enrollment, EnrollmentTable};
pub use error::StoreError;
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
