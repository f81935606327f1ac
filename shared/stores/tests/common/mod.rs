//! Tables with the template's key schemas, and a count of the DynamoDB requests sent.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test helpers

/// Creates the TokenTable's shape: partition key `id` (S), nothing else.
pub async fn create_token_table(ddb: &aws_sdk_dynamodb::Client, name: &str) {
    testkit::create_hash_table(ddb, name, "id").await;
}

pub use testkit::counting_client;
