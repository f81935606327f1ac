//! The TokenTable adapter: token records (issued, revoked) and per-client revoke-all records.
//! Layout in [`crate::attrs`].

use std::collections::BTreeSet;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use signin::{Claims, Grant, Revocations};

use crate::attrs::token as a;
use crate::error::StoreError;
use crate::item::{BATCH_ATTEMPTS, Item, backoff, get_bool, get_n, get_s, n, s};

/// Most keys one `BatchGetItem` may ask for.
const MAX_BATCH_GET: usize = 100;

/// What the table knows about one issued token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The client the token was issued to.
    pub client_id: String,
    /// The token's `iat`, seconds since the epoch.
    pub issued_at: u64,
    /// The token's `exp`, seconds since the epoch.
    pub expires_at: u64,
    /// Whether the token itself was revoked (a client's revoke-all is a separate record:
    /// [`TokenTable::revoked_before`]).
    pub revoked: bool,
    /// When it was first revoked, seconds since the epoch.
    pub revoked_at: Option<u64>,
}

/// The TokenTable: a DynamoDB client and the table name.
#[derive(Debug, Clone)]
pub struct TokenTable {
    client: Client,
    table: String,
}

crate::table_adapter!(TokenTable, "TOKEN_TABLE");

impl TokenTable {
    /// Records a token just issued (before it is handed out). Refuses to overwrite a record
    /// with the same token ID: a colliding ID would otherwise un-revoke a revoked token.
    pub async fn record_issued(&self, claims: &Claims) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(a::ID, s(a::token_key(&claims.token_id)))
            .item(a::CLIENT_ID, s(&claims.client_id))
            .item(a::ISSUED_AT, n(claims.issued_at))
            .item(a::EXPIRES_AT, n(claims.expires_at))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", a::ID)
            .send()
            .await
            .map_err(|e| StoreError::sdk("PutItem", &self.table, &e))?;
        Ok(())
    }

    /// The record of a token, or `None` when the table has none (never issued here, or
    /// expired and removed by TTL). Strongly consistent.
    pub async fn status(&self, token_id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(a::ID, s(a::token_key(token_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", &self.table, &e))?;
        let Some(item) = resp.item else {
            return Ok(None);
        };
        let bad =
            |problem: String| self.err("GetItem", format!("token record {token_id}: {problem}"));
        let client_id = get_s(&item, a::CLIENT_ID)
            .ok_or_else(|| bad(format!("no {} string", a::CLIENT_ID)))?
            .to_owned();
        let issued_at = get_n(&item, a::ISSUED_AT)
            .map_err(&bad)?
            .ok_or_else(|| bad(format!("no {}", a::ISSUED_AT)))?;
        let expires_at = get_n(&item, a::EXPIRES_AT)
            .map_err(&bad)?
            .ok_or_else(|| bad(format!("no {}", a::EXPIRES_AT)))?;
        Ok(Some(TokenRecord {
            client_id,
            issued_at,
            expires_at,
            revoked: get_bool(&item, a::REVOKED),
            revoked_at: get_n(&item, a::REVOKED_AT).map_err(&bad)?,
        }))
    }

    /// Revokes one token. `Ok(false)` when the table has no record of it (nothing to revoke).
    /// Revoking twice is harmless and keeps the first `revokedAt`.
    pub async fn revoke(&self, token_id: &str, now_s: u64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(a::ID, s(a::token_key(token_id)))
            .update_expression("SET #r = :t, #ra = if_not_exists(#ra, :now)")
            .condition_expression("attribute_exists(#id)")
            .expression_attribute_names("#id", a::ID)
            .expression_attribute_names("#r", a::REVOKED)
            .expression_attribute_names("#ra", a::REVOKED_AT)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":now", n(now_s))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::sdk("UpdateItem", &self.table, &e)),
        }
    }

    /// Revokes every token of a client issued so far: its `revokedBefore` becomes `now_s`
    /// (never earlier than a revoke-all already recorded, whose later time is kept). Returns
    /// the `revokedBefore` in force.
    pub async fn revoke_client(&self, client_id: &str, now_s: u64) -> Result<u64, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(a::ID, s(a::client_key(client_id)))
            .update_expression("SET #rb = :rb, #e = :e")
            .condition_expression("attribute_not_exists(#rb) OR #rb < :rb")
            .expression_attribute_names("#rb", a::REVOKED_BEFORE)
            .expression_attribute_names("#e", a::EXPIRES_AT)
            .expression_attribute_values(":rb", n(now_s))
            .expression_attribute_values(
                ":e",
                n(now_s.saturating_add(a::CLIENT_REVOCATION_TTL_SECS)),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(now_s),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                // A revoke-all at the same second or later is already recorded: it stands.
                self.revoked_before(client_id).await?.ok_or_else(|| {
                    self.err("UpdateItem", format!("client record {client_id} vanished"))
                })
            }
            Err(e) => Err(StoreError::sdk("UpdateItem", &self.table, &e)),
        }
    }

    /// A client's `revokedBefore`, if it was ever revoked (and the record has not expired).
    /// Strongly consistent: the issuer reads it before issuing.
    pub async fn revoked_before(&self, client_id: &str) -> Result<Option<u64>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(a::ID, s(a::client_key(client_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", &self.table, &e))?;
        match resp.item {
            None => Ok(None),
            Some(item) => get_n(&item, a::REVOKED_BEFORE)
                .map_err(|p| self.err("GetItem", format!("client record {client_id}: {p}"))),
        }
    }

    /// The revocations that concern one sign-in: its tokens' records and its client's
    /// revoke-all record, in one strongly consistent `BatchGetItem` (keys DynamoDB leaves
    /// unprocessed are asked for again, with backoff).
    pub async fn revocations_for(&self, grant: &Grant) -> Result<Revocations, StoreError> {
        let keys: BTreeSet<String> = grant
            .token_ids
            .iter()
            .map(|id| a::token_key(id))
            .chain(std::iter::once(a::client_key(&grant.client_id)))
            .collect();
        let keys: Vec<String> = keys.into_iter().collect();
        let mut revocations = Revocations::default();
        for chunk in keys.chunks(MAX_BATCH_GET) {
            for item in self.batch_get(chunk).await? {
                self.add_revocation(&mut revocations, &item, "BatchGetItem")?;
            }
        }
        Ok(revocations)
    }

    async fn batch_get(&self, ids: &[String]) -> Result<Vec<Item>, StoreError> {
        let keys: Vec<Item> = ids
            .iter()
            .map(|id| Item::from([(a::ID.to_owned(), s(id))]))
            .collect();
        let mut pending = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| self.err("BatchGetItem", e.to_string()))?;
        let mut items = Vec::new();
        for attempt in 0..BATCH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let resp = self
                .client
                .batch_get_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(|e| StoreError::sdk("BatchGetItem", &self.table, &e))?;
            if let Some(mut responses) = resp.responses {
                items.extend(responses.remove(&self.table).unwrap_or_default());
            }
            match resp
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .filter(|k| !k.keys.is_empty())
            {
                None => return Ok(items),
                // Asked for again as first asked: strongly consistent (an emulator's
                // unprocessed keys may come back without the flag).
                Some(rest) => {
                    pending = KeysAndAttributes::builder()
                        .set_keys(Some(rest.keys))
                        .consistent_read(true)
                        .build()
                        .map_err(|e| self.err("BatchGetItem", e.to_string()))?;
                }
            }
        }
        Err(self.err(
            "BatchGetItem",
            format!("keys still unprocessed after {BATCH_ATTEMPTS} attempts (throttled)"),
        ))
    }

    /// Every revocation in the table (a paginated, strongly consistent Scan of the revoked
    /// token records and the client records). The local stack exports it to the broker
    /// plugin's revocations file; the cloud never scans.
    pub async fn all_revocations(&self) -> Result<Revocations, StoreError> {
        let mut revocations = Revocations::default();
        let mut start = None;
        loop {
            let resp = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("#r = :t OR attribute_exists(#rb)")
                .projection_expression("#id, #r, #rb")
                .expression_attribute_names("#id", a::ID)
                .expression_attribute_names("#r", a::REVOKED)
                .expression_attribute_names("#rb", a::REVOKED_BEFORE)
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::sdk("Scan", &self.table, &e))?;
            for item in resp.items.unwrap_or_default() {
                self.add_revocation(&mut revocations, &item, "Scan")?;
            }
            match resp.last_evaluated_key.filter(|k| !k.is_empty()) {
                None => return Ok(revocations),
                Some(key) => start = Some(key),
            }
        }
    }

    /// Adds what one item of either kind revokes.
    fn add_revocation(
        &self,
        revocations: &mut Revocations,
        item: &Item,
        op: &'static str,
    ) -> Result<(), StoreError> {
        let Some(id) = get_s(item, a::ID) else {
            return Err(self.err(op, format!("an item without a string {}", a::ID)));
        };
        if let Some(token_id) = id.strip_prefix(a::TOKEN_PREFIX) {
            if get_bool(item, a::REVOKED) {
                revocations.tokens.insert(token_id.to_owned());
            }
        } else if let Some(client_id) = id.strip_prefix(a::CLIENT_PREFIX) {
            let before =
                get_n(item, a::REVOKED_BEFORE).map_err(|p| self.err(op, format!("{id}: {p}")))?;
            if let Some(before) = before {
                revocations.clients.insert(client_id.to_owned(), before);
            }
        }
        Ok(())
    }
}
