//! The EnrollmentTable adapter: which rooms a client may join and chat in, written by the
//! issuer's classroom route, read by moderation. Layout in [`crate::attrs`].

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use mapping::{ClientId, Role, RoomId};

use crate::attrs::enrollment as a;
use crate::error::StoreError;
use crate::item::{BATCH_ATTEMPTS, Item, backoff, get_n, get_s, n, query_partition, s};

/// Most items one `BatchWriteItem` may carry.
const MAX_BATCH_WRITE: usize = 25;

/// One enrollment: a client may join and chat in a room until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// The room.
    pub room_id: RoomId,
    /// The client's role there.
    pub role: Role,
    /// When it was last written, ms since the epoch.
    pub enrolled_at_ms: u64,
    /// Until when it holds, seconds since the epoch (the TTL; DynamoDB removes expired items
    /// only eventually, so readers compare it with their clock).
    pub expires_at: u64,
}

impl Enrollment {
    /// Whether it still holds at `now_s`.
    pub fn is_active(&self, now_s: u64) -> bool {
        now_s < self.expires_at
    }
}

/// The wire name of a role in [`a::ROLE`].
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Teacher => "teacher",
        Role::Student => "student",
        Role::Other => "other",
    }
}

/// A role from its wire name.
pub fn parse_role(name: &str) -> Option<Role> {
    match name {
        "teacher" => Some(Role::Teacher),
        "student" => Some(Role::Student),
        "other" => Some(Role::Other),
        _ => None,
    }
}

/// The EnrollmentTable: a DynamoDB client and the table name.
#[derive(Debug, Clone)]
pub struct EnrollmentTable {
    client: Client,
    table: String,
}

crate::table_adapter!(EnrollmentTable, "ENROLLMENT_TABLE");

impl EnrollmentTable {
    /// Enrolls `client` in `rooms` with `role` until `expires_at_s` (the token's `exp`),
    /// written at `now_ms`. A room the client is already enrolled in until later keeps the
    /// later expiry (another token may still grant it), so this reads the client's
    /// enrollments first (one Query), then writes with `BatchWriteItem` (25 items a call,
    /// unprocessed items retried with backoff). Two issues for one client at the same time
    /// may race on that read; the loser's expiry is then the one written.
    pub async fn enroll(
        &self,
        client: &ClientId,
        rooms: &[RoomId],
        role: Role,
        expires_at_s: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        if rooms.is_empty() {
            return Ok(());
        }
        let existing: HashMap<RoomId, u64> = self
            .rooms_of(client)
            .await?
            .into_iter()
            .map(|e| (e.room_id, e.expires_at))
            .collect();
        let mut rooms: Vec<&RoomId> = rooms.iter().collect();
        rooms.sort();
        rooms.dedup();
        let mut requests = Vec::with_capacity(rooms.len());
        for room in rooms {
            let expires = existing
                .get(room)
                .map_or(expires_at_s, |&e| e.max(expires_at_s));
            let item = Item::from([
                (a::CLIENT_ID.to_owned(), s(client.as_str())),
                (a::ROOM_ID.to_owned(), s(room.as_str())),
                (a::ENROLLED_AT.to_owned(), n(now_ms)),
                (a::EXPIRES_AT.to_owned(), n(expires)),
                (a::ROLE.to_owned(), s(role_name(role))),
            ]);
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| self.err("BatchWriteItem", e.to_string()))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for chunk in requests.chunks(MAX_BATCH_WRITE) {
            self.batch_write(chunk.to_vec()).await?;
        }
        Ok(())
    }

    async fn batch_write(&self, mut pending: Vec<WriteRequest>) -> Result<(), StoreError> {
        for attempt in 0..BATCH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let resp = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(|e| StoreError::sdk("BatchWriteItem", &self.table, &e))?;
            match resp
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
                .filter(|items| !items.is_empty())
            {
                None => return Ok(()),
                Some(rest) => pending = rest,
            }
        }
        Err(self.err(
            "BatchWriteItem",
            format!("items still unprocessed after {BATCH_ATTEMPTS} attempts (throttled)"),
        ))
    }

    /// Every enrollment of a client, expired ones included (compare
    /// [`Enrollment::expires_at`] with the clock), sorted by room. One strongly consistent
    /// Query, paginated.
    pub async fn rooms_of(&self, client: &ClientId) -> Result<Vec<Enrollment>, StoreError> {
        let items =
            query_partition(&self.client, &self.table, a::CLIENT_ID, client.as_str()).await?;
        items
            .iter()
            .map(|item| self.enrollment(client, item))
            .collect()
    }

    fn enrollment(&self, client: &ClientId, item: &Item) -> Result<Enrollment, StoreError> {
        let bad = |problem: String| self.err("Query", format!("enrollment of {client}: {problem}"));
        let room = get_s(item, a::ROOM_ID).ok_or_else(|| bad(format!("no {}", a::ROOM_ID)))?;
        let room_id = RoomId::parse(room).map_err(|e| bad(e.to_string()))?;
        let role_text = get_s(item, a::ROLE).ok_or_else(|| bad(format!("no {}", a::ROLE)))?;
        let role =
            parse_role(role_text).ok_or_else(|| bad(format!("unknown role {role_text:?}")))?;
        Ok(Enrollment {
            room_id,
            role,
            enrolled_at_ms: get_n(item, a::ENROLLED_AT).map_err(&bad)?.unwrap_or(0),
            expires_at: get_n(item, a::EXPIRES_AT)
                .map_err(&bad)?
                .ok_or_else(|| bad(format!("no {}", a::EXPIRES_AT)))?,
        })
    }
}
