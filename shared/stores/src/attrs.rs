//! Every attribute name and key prefix of every table, written once. The store adapters,
//! the template (key schemas, TTL attributes) and the local stack rely on these layouts;
//! change them only together.
//!
//! # TokenTable (partition key [`token::ID`], S; TTL attribute [`token::EXPIRES_AT`])
//! - `token#<jti>` ([`token::TOKEN_PREFIX`]): one issued token. [`token::CLIENT_ID`] S,
//!   [`token::ISSUED_AT`] N (s), [`token::EXPIRES_AT`] N (s, the token's `exp`, so DynamoDB's
//!   TTL drops the record once the token is useless anyway), [`token::REVOKED`] BOOL (absent =
//!   not revoked), [`token::REVOKED_AT`] N (s, the first revocation).
//! - `client#<clientId>` ([`token::CLIENT_PREFIX`]): "every token of this client issued so far
//!   is revoked". [`token::REVOKED_BEFORE`] N (s), [`token::EXPIRES_AT`] N =
//!   revokedBefore + [`token::CLIENT_REVOCATION_TTL_SECS`] (no token outlives that: the
//!   longest lifetime is 30 days).
//!
//! # EnrollmentTable (partition [`enrollment::CLIENT_ID`] S, sort [`enrollment::ROOM_ID`] S)
//! One item per client and room it may join and chat in: [`enrollment::ENROLLED_AT`] N (ms),
//! [`enrollment::EXPIRES_AT`] N (s, TTL: the expiry of the latest-expiring token that granted
//! the room), [`enrollment::ROLE`] S (`teacher` | `student`).
//!
//! # PresenceTable (partition [`presence::CLIENT_ID`] S, sort [`presence::CHANNEL_ID`] S)
//! One item per client and channel (connection): [`presence::CONNECTED_AT`] N (ms),
//! [`presence::CLIENT_IP`] S, [`presence::OFFLINE_AT`] N (ms), [`presence::OFFLINE_KIND`] S,
//! [`presence::OFFLINE_REASON`] S, [`presence::EXPIRES_AT`] N (s, TTL, closed channels only);
//! and one head item per client (sort key [`presence::HEAD`]): [`presence::VERSION`] N (the
//! version lock), [`presence::ONLINE`] BOOL, [`presence::ROOMS`] SS (added by the moderation
//! function's `join`).
//!
//! # ChatRateTable (partition [`chat_rate::CLIENT_ID`] S, sort [`chat_rate::WINDOW_START`] S; TTL attribute [`chat_rate::EXPIRES_AT`])
//! One item per sender and chat-rate window: [`chat_rate::CHATS`] N (the chats counted in
//! the window), [`chat_rate::EXPIRES_AT`] N (s). Layout: [`crate::moderation`].
//!
//! # AttendanceTable (partition [`attendance::CLIENT_ID`] S, sort [`attendance::SESSION_ID`] S)
//! One item per connection: [`attendance::JOINED_AT`] N (ms), [`attendance::LEFT_AT`] N (ms),
//! [`attendance::LEAVE_KIND`] S, [`attendance::LEAVE_REASON`] S, [`attendance::CLIENT_IP`] S,
//! [`attendance::ROOMS`] SS.

/// TokenTable: token records and per-client revocations.
pub mod token {
    /// The partition key (S): `token#<jti>` or `client#<clientId>`.
    pub const ID: &str = "id";
    /// Key prefix of a token record.
    pub const TOKEN_PREFIX: &str = "token#";
    /// Key prefix of a client's revoke-all record.
    pub const CLIENT_PREFIX: &str = "client#";
    /// Token record: the client the token was issued to (S).
    pub const CLIENT_ID: &str = "clientId";
    /// Token record: the token's `iat`, seconds since the epoch (N).
    pub const ISSUED_AT: &str = "issuedAt";
    /// Both records: the TTL attribute, seconds since the epoch (N). A token record's is the
    /// token's `exp`; a client record's is `revokedBefore` + 30 days.
    pub const EXPIRES_AT: &str = "expiresAt";
    /// Token record: revoked (BOOL; absent means not revoked).
    pub const REVOKED: &str = "revoked";
    /// Token record: when it was first revoked, seconds since the epoch (N).
    pub const REVOKED_AT: &str = "revokedAt";
    /// Client record: every token of the client issued at or before this second is revoked
    /// (N; the exact rule is `signin::Revocations::check`'s).
    pub const REVOKED_BEFORE: &str = "revokedBefore";
    /// How long a client record lives after its `revokedBefore`: the longest token lifetime
    /// (30 days, Alibaba ApplyToken's maximum), after which every token it revokes has expired.
    pub const CLIENT_REVOCATION_TTL_SECS: u64 = 30 * 24 * 3600;

    /// The key of a token record.
    pub fn token_key(token_id: &str) -> String {
        format!("{TOKEN_PREFIX}{token_id}")
    }

    /// The key of a client's revoke-all record.
    pub fn client_key(client_id: &str) -> String {
        format!("{CLIENT_PREFIX}{client_id}")
    }
}

/// EnrollmentTable: which rooms a client may join and chat in.
pub mod enrollment {
    /// The partition key (S): the client ID.
    pub const CLIENT_ID: &str = "clientId";
    /// The sort key (S): the room ID.
    pub const ROOM_ID: &str = "roomId";
    /// When the enrollment was last written, milliseconds since the epoch (N).
    pub const ENROLLED_AT: &str = "enrolledAt";
    /// The TTL attribute, seconds since the epoch (N): the expiry of the token that granted the
    /// room (a later-expiring token extends it; an earlier-expiring one never shortens it).
    pub const EXPIRES_AT: &str = "expiresAt";
    /// The client's role in the room (S): `teacher` or `student`.
    pub const ROLE: &str = "role";
}

/// MuteTable (partition [`mute::ROOM_ID`] S, sort [`mute::CLIENT_ID`] S; TTL attribute
/// [`mute::EXPIRES_AT`]): one item per room and student, written by the moderation function's
/// `mute` / `unmute` in command order. Layout: [`crate::moderation`].
pub mod mute {
    /// The partition key (S): the room ID.
    pub const ROOM_ID: &str = "roomId";
    /// The sort key (S): the student's client ID.
    pub const CLIENT_ID: &str = "clientId";
    /// Muted by the last command applied (BOOL).
    pub const MUTED: &str = "muted";
    /// End of a timed mute, ms (N; absent = until unmuted).
    pub const UNTIL_MS: &str = "untilMs";
    /// The teacher who gave the last command (S).
    pub const BY: &str = "by";
    /// Broker time of the last command applied, ms (N): the order of commands.
    pub const CHANGED_AT: &str = "changedAt";
    /// Message ID of the last command applied (S): its redelivery is written again.
    pub const COMMAND_ID: &str = "commandId";
    /// The TTL attribute, seconds (N): a day after a timed mute ends, 30 days after an unmute
    /// (absent while muted until unmuted).
    pub const EXPIRES_AT: &str = "expiresAt";
}

/// MembershipTable (partition [`membership::ROOM_ID`] S, sort [`membership::CLIENT_ID`] S):
/// one item per room and member, written by the moderation function's `join`.
pub mod membership {
    /// The partition key (S): the room ID.
    pub const ROOM_ID: &str = "roomId";
    /// The sort key (S): the member's client ID.
    pub const CLIENT_ID: &str = "clientId";
    /// The first join, ms (N; a later join keeps it).
    pub const JOINED_AT: &str = "joinedAt";
    /// The member's role when it joined (S): `teacher`, `student` or `other`.
    pub const ROLE: &str = "role";
}

/// ChatRateTable (partition [`chat_rate::CLIENT_ID`] S, sort [`chat_rate::WINDOW_START`] S; TTL
/// attribute [`chat_rate::EXPIRES_AT`]): the moderation function's chat counter, one item per
/// sender and rate window.
pub mod chat_rate {
    /// The partition key (S): the sender's client ID.
    pub const CLIENT_ID: &str = "clientId";
    /// The sort key (S): the window's start, broker time in ms, in decimal (the table's keys
    /// are strings, as every table's here).
    pub const WINDOW_START: &str = "windowStart";
    /// The chats counted in the window (N), incremented by one atomic `ADD` per chat.
    pub const CHATS: &str = "chats";
    /// The TTL attribute, seconds (N): [`KEEP_SECS`] after the window ends.
    pub const EXPIRES_AT: &str = "expiresAt";
    /// How long a window's counter is kept after the window ends, seconds: past the longest
    /// redelivery delay that matters (a redelivery later than that counts from 1 again). TTL
    /// deletion is lazy anyway; the items are tiny.
    pub const KEEP_SECS: u64 = 3600;
}

/// PresenceTable (partition [`presence::CLIENT_ID`] S, sort [`presence::CHANNEL_ID`] S; TTL
/// attribute [`presence::EXPIRES_AT`]): the presence function's per-channel state and the
/// per-client head item. Layout: [`crate::presence`].
pub mod presence {
    /// The partition key (S): the client ID.
    pub const CLIENT_ID: &str = "clientId";
    /// The sort key (S): the channel ID, or [`HEAD`] for the client's head item.
    pub const CHANNEL_ID: &str = "channelId";
    /// Channel item: earliest connect time seen on the channel, ms (N; absent until the
    /// connect arrives).
    pub const CONNECTED_AT: &str = "connectedAt";
    /// Channel item: earliest offline time seen on the channel, ms (N; absent while open).
    pub const OFFLINE_AT: &str = "offlineAt";
    /// Channel item: the event kind that gave `offlineAt` (S: `disconnect` or `tcpclean`).
    pub const OFFLINE_KIND: &str = "offlineKind";
    /// Channel item: why the channel went offline, when known (S).
    pub const OFFLINE_REASON: &str = "offlineReason";
    /// Channel item: the client's address on the connect (S).
    pub const CLIENT_IP: &str = "clientIp";
    /// Channel item with an offline event: when DynamoDB may delete it, seconds since the
    /// epoch (N; the table's TTL attribute, `mapping::presence::RETENTION_MS` after the
    /// offline event). The head item never has it.
    pub const EXPIRES_AT: &str = "expiresAt";
    /// The `channelId` of the per-client head item: the version lock of the client's items,
    /// and the rooms the client joined. It starts with
    /// `mapping::lifecycle::RESERVED_CHANNEL_PREFIX`, which no event's channel ID may.
    pub const HEAD: &str = "#head";
    /// Head item: the version every write of the client's state is conditioned on (N).
    pub const VERSION: &str = "version";
    /// Head item: the rooms the client joined (SS), added by the moderation function's `join`
    /// in the transaction that records the membership, so the presence function's one Query
    /// of the client's items also tells it whom to notify.
    pub const ROOMS: &str = "rooms";
    /// Head item: whether the client was online after the last event applied (BOOL), written
    /// with [`VERSION`]; the moderation function reads it for a room's member list.
    pub const ONLINE: &str = "online";

    // An event cannot name the head item.
    const _: () = assert!(HEAD.as_bytes()[0] == mapping::lifecycle::RESERVED_CHANNEL_PREFIX as u8);
}

/// AttendanceTable (partition [`attendance::CLIENT_ID`] S, sort [`attendance::SESSION_ID`] S):
/// one item per connection, written by the presence function with the connection's channel.
pub mod attendance {
    /// The partition key (S): the client ID.
    pub const CLIENT_ID: &str = "clientId";
    /// The sort key (S): the connection's channel ID.
    pub const SESSION_ID: &str = "sessionId";
    /// When the connection opened, ms (N: the channel's earliest connect).
    pub const JOINED_AT: &str = "joinedAt";
    /// When it ended, ms (N: the channel's earliest offline event).
    pub const LEFT_AT: &str = "leftAt";
    /// The event kind that ended it (S: `disconnect` or `tcpclean`).
    pub const LEAVE_KIND: &str = "leaveKind";
    /// Why it ended, when known (S).
    pub const LEAVE_REASON: &str = "leaveReason";
    /// The client's address on the connect (S).
    pub const CLIENT_IP: &str = "clientIp";
    /// The client's rooms as read on an online/offline transition (SS): a hint, not the record
    /// (attendance per room is the join of these sessions with the membership items).
    pub const ROOMS: &str = "rooms";
}
