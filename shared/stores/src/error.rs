//! The one store error.

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};

/// A store operation failed: the DynamoDB call, its retries of unprocessed items, or an item
/// that does not have the layout of [`crate::attrs`]. Every failure is worth a retry by the
/// caller except a bad item, which needs an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DynamoDB {op} on table {table} failed: {message}")]
pub struct StoreError {
    /// The operation (`PutItem`, `BatchGetItem`, ...).
    pub op: &'static str,
    /// The table.
    pub table: String,
    /// What went wrong (the SDK error with its context, from `DisplayErrorContext`).
    pub message: String,
}

impl StoreError {
    /// An error of `op` on `table`.
    pub fn new(op: &'static str, table: &str, message: impl Into<String>) -> Self {
        Self {
            op,
            table: table.to_owned(),
            message: message.into(),
        }
    }

    /// An SDK call's error, with its full context.
    pub(crate) fn sdk<E, R>(op: &'static str, table: &str, e: &SdkError<E, R>) -> Self
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        Self::new(op, table, DisplayErrorContext(e).to_string())
    }
}
