//! The presence rule function (SPEC §5): lifecycle events (§4.4) in; per-channel presence and
//! per-connection attendance in DynamoDB; a status notice to each of the client's rooms on every
//! online/offline transition, through the downlink queue.
//!
//! # Layout
//! - [`Function`]: built once per container from the environment; [`Function::handle`] is the
//!   per-invocation entry point, shared by the Lambda `main` and the local event-source runner.
//! - [`store`]: the DynamoDB adapter (items, the per-client version lock with the client's
//!   rooms, attendance).
//!
//! # One event
//! 1. Read the client's items (one Query): its channels, and the head item with the version
//!    and the rooms it joined (the moderation function's `join` keeps them there).
//! 2. Apply the event with the pure reducer ([`mapping::ClientPresence::apply`]); a duplicate
//!    changes nothing and ends here. 3. On a transition, send the status notices to those
//!    rooms. 4. Write the channel, the attendance item and the version bump in one
//!    transaction conditioned on the version read; on a conflict go back to 1.
//!
//! Lifecycle events of clients whose ID is not classroom-shaped (no `@@@`: the backend's own
//! MQTT connections) are skipped with a log line; any other invalid event fails its record.
//!
//! DynamoDB calls: 1 for a duplicate, 2 for any other event, a transition included (plus one
//! `SendMessageBatch` for a transition); each conflict adds a read and a write. Notices go out *before* the write: if the write
//! fails the record is redelivered, recomputes the same transition and resends the same notice
//! IDs (clients de-duplicate); writing first would lose the notice, because the redelivered
//! event would then be a duplicate. If a conflict changes the outcome after a notice went out,
//! a corrective status notice with the client's current state follows.

pub mod store;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use kit::{
    BatchError, ConfigError, Env, Outcome, OutgoingMessage, RecordError, SendError, SqsSender,
    each_record, process_batch,
};
use mapping::{
    ClientId, LifecycleEvent, MappingError, NameError, Notice, RoomId, RulesConfig, StatusNotice,
    Transition, notice_id,
};
use tracing::{debug, info, warn};

use crate::store::{PresenceStore, StoreError, Write};

/// Attempts at the read-apply-write cycle before a conflicting record is left to redelivery.
pub const MAX_ATTEMPTS: u32 = 5;

/// Why an event could not be applied. Both are worth a retry.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// The store failed or kept conflicting.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A status notice could not be sent.
    #[error("status notice not sent: {0}")]
    Send(#[from] SendError),
}

impl From<PresenceError> for RecordError {
    fn from(e: PresenceError) -> Self {
        match e {
            PresenceError::Store(e @ StoreError::Conflict { .. }) => {
                RecordError::transient("presence_conflict", e)
            }
            PresenceError::Store(e @ StoreError::BadItem { .. }) => {
                RecordError::transient("presence_bad_item", e)
            }
            PresenceError::Store(e) => RecordError::transient("dynamodb", e),
            PresenceError::Send(e) => e.into(),
        }
    }
}

/// What one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// The online/offline transition.
    pub transition: Transition,
    /// Whether the event changed the stored state (false for a duplicate).
    pub changed: bool,
    /// DynamoDB calls made.
    pub dynamodb_calls: u32,
    /// Status notices sent (one per room, plus corrections).
    pub notices: usize,
}

/// The presence function: store, downlink sender, rules.
#[derive(Debug, Clone)]
pub struct Function {
    store: PresenceStore,
    sender: SqsSender,
    downlink_queue_url: String,
    rules: RulesConfig,
    /// Now, ms since the epoch: judges whether an event is older than the retention.
    clock: fn() -> u64,
}

/// The ID all status notices caused by `event` derive from: the event itself (client,
/// channel, kind), so a redelivery or a duplicate delivery by the broker gives the same IDs.
pub fn event_source_id(event: &LifecycleEvent) -> String {
    format!("{}:{}:{}", event.client_id, event.channel_id, event.kind)
}

fn status_notices(
    event: &LifecycleEvent,
    online: bool,
    rooms: &[RoomId],
    suffix: &str,
) -> Vec<Notice> {
    let source = event_source_id(event);
    rooms
        .iter()
        .map(|room| {
            Notice::from(StatusNotice::new(
                online,
                event.client_id.clone(),
                room.clone(),
                notice_id(&source, &format!("status-{room}{suffix}")),
                event.time_ms,
            ))
        })
        .collect()
}

/// What one attempt of [`Function::apply`] must announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// Nothing: no transition, or the one already announced.
    Nothing,
    /// The transition: `online` or `offline` to the client's rooms.
    Transition {
        /// Online or offline.
        online: bool,
    },
    /// A concurrent writer changed the picture after an earlier attempt announced a
    /// transition: tell the rooms where the client really stands now.
    Correction {
        /// The client's state now.
        online: bool,
    },
}

/// Decides what to announce, given this attempt's transition, what an earlier attempt of the
/// same record already announced, and whether the client is online after this attempt.
pub fn announce(
    transition: Transition,
    announced: Option<Transition>,
    online_now: bool,
) -> Announce {
    match (transition, announced) {
        (Transition::Unchanged, None) => Announce::Nothing,
        (t, None) => Announce::Transition {
            online: t == Transition::BecameOnline,
        },
        (t, Some(a)) if t == a => Announce::Nothing,
        (_, Some(_)) => Announce::Correction { online: online_now },
    }
}

/// Wait before attempt `attempt + 1`: exponential from 10 ms, with jitter so two containers
/// that collided do not collide again in lockstep.
fn backoff(attempt: u32) -> std::time::Duration {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) % 10);
    std::time::Duration::from_millis((10u64 << attempt.min(5)) + jitter)
}

impl Function {
    /// Builds the function from its parts.
    pub fn new(
        store: PresenceStore,
        sender: SqsSender,
        downlink_queue_url: String,
        rules: RulesConfig,
    ) -> Self {
        Self {
            store,
            sender,
            downlink_queue_url,
            rules,
            clock: kit::now_ms,
        }
    }

    /// The same function with another clock (tests replaying recorded events).
    #[must_use]
    pub fn with_clock(self, clock: fn() -> u64) -> Self {
        Self { clock, ..self }
    }

    /// Builds the function from the environment: `PRESENCE_TABLE`, `ATTENDANCE_TABLE`,
    /// `DOWNLINK_QUEUE_URL` and the shared rules variables. (`MembershipTable` is not read:
    /// the rooms come with the client's head item.)
    pub fn from_env_with(env: &Env, sdk: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let rules = env.rules()?;
        let presence = env.required("PRESENCE_TABLE", "set it to the PresenceTable name")?;
        let attendance = env.required("ATTENDANCE_TABLE", "set it to the AttendanceTable name")?;
        let downlink = env.required("DOWNLINK_QUEUE_URL", "set it to the downlink queue URL")?;
        let store = PresenceStore::new(aws_sdk_dynamodb::Client::new(sdk), presence, attendance);
        Ok(Self::new(
            store,
            SqsSender::new(aws_sdk_sqs::Client::new(sdk)),
            downlink,
            rules,
        ))
    }

    /// Builds the function from the process environment (cold start).
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(&Env::process(), &kit::aws::sdk_config().await)
    }

    /// The rules configuration it was built with.
    pub fn rules(&self) -> &RulesConfig {
        &self.rules
    }

    /// Handles one batch of lifecycle events, one record after the other (events of one
    /// client must be applied in turn; the version lock covers other containers).
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        process_batch(&event, |records| async move {
            each_record(&records, |record| self.handle_record(record.message)).await
        })
        .await
    }

    async fn handle_record(&self, message: &SqsMessage) -> Outcome {
        let tag = message
            .message_attributes
            .get("tag")
            .and_then(|a| a.string_value.as_deref());
        let event = match LifecycleEvent::from_json(
            message.body.as_deref().unwrap_or_default(),
            tag,
        ) {
            Ok(event) => event,
            // The broker reports every connection, the backend's own (the inflow function's
            // `backend-inflow-...`) included. A client ID without `@@@` is not a classroom
            // client: its presence is not tracked, and sending it to the DLQ five times per
            // container start would only bury real failures. A classroom-shaped but invalid
            // ID is still an error.
            Err(MappingError::ClientId(NameError::Separator { client })) => {
                info!(client_id = %client, skipped = true, "not a classroom client ID; presence not tracked");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if mapping::presence::is_stale(event.time_ms, (self.clock)()) {
            // Its channel's item may have expired: applying it could reopen a connection that
            // ended long ago. Nothing is lost: newer events describe the client.
            warn!(client_id = %event.client_id, channel_id = %event.channel_id, time_ms = event.time_ms, "lifecycle event older than the retention (15 days); ignored");
            return Ok(());
        }
        // Boxed: the read-reduce-notify-write future is deep (SDK futures inside a retry loop).
        let effect = Box::pin(self.apply(&event)).await?;
        info!(
            client_id = %event.client_id,
            channel_id = %event.channel_id,
            kind = %event.kind,
            transition = ?effect.transition,
            changed = effect.changed,
            dynamodb_calls = effect.dynamodb_calls,
            notices = effect.notices,
            "lifecycle event applied"
        );
        Ok(())
    }

    async fn send(&self, notices: &[Notice]) -> Result<(), SendError> {
        if notices.is_empty() {
            return Ok(());
        }
        let messages: Vec<OutgoingMessage> =
            notices.iter().map(|n| n.to_downlink().into()).collect();
        for result in self
            .sender
            .send_all(&self.downlink_queue_url, &messages)
            .await
        {
            result?;
        }
        Ok(())
    }

    /// Applies one event: read, reduce, notify, write (see the crate docs).
    pub async fn apply(&self, event: &LifecycleEvent) -> Result<Effect, PresenceError> {
        let mut calls = 0;
        let mut notices = 0;
        // The transition whose notices already went out, if any.
        let mut announced: Option<Transition> = None;
        for attempt in 0..MAX_ATTEMPTS {
            let snapshot = self.store.read(&event.client_id).await?;
            calls += 1;
            let mut presence = snapshot.presence;
            let applied = presence.apply(event);
            let Some(state) = applied.channel else {
                debug!("duplicate event: nothing to write");
                return Ok(Effect {
                    transition: applied.transition,
                    changed: false,
                    dynamodb_calls: calls,
                    notices,
                });
            };
            let plan = announce(applied.transition, announced, presence.is_online());
            // The rooms came with the read; they go to the attendance item on a transition.
            let rooms: &[RoomId] = if plan == Announce::Nothing {
                &[]
            } else {
                &snapshot.rooms
            };
            let batch = match plan {
                Announce::Nothing => Vec::new(),
                Announce::Transition { online } => status_notices(event, online, rooms, ""),
                Announce::Correction { online } => {
                    status_notices(event, online, rooms, &format!("-fix{attempt}"))
                }
            };
            self.send(&batch).await?;
            notices += batch.len();
            if plan != Announce::Nothing {
                announced = Some(applied.transition);
            }
            let write = Write {
                client: &event.client_id,
                channel: &event.channel_id,
                state: &state,
                read_version: snapshot.version,
                rooms,
                online: presence.is_online(),
            };
            calls += 1;
            match self.store.write(&write).await {
                Ok(()) => {
                    return Ok(Effect {
                        transition: applied.transition,
                        changed: true,
                        dynamodb_calls: calls,
                        notices,
                    });
                }
                Err(StoreError::Conflict { read }) => {
                    warn!(
                        attempt,
                        read_version = read,
                        "presence changed concurrently; reading again"
                    );
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict { read: 0 }.into())
    }

    /// Whether a client is online, and on which channels (the query function's read).
    pub async fn query(&self, client: &ClientId) -> Result<store::Snapshot, StoreError> {
        self.store.read(client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transition::{BecameOffline, BecameOnline, Unchanged};

    #[test]
    fn configuration_errors_name_the_variable() {
        let sdk = aws_config::SdkConfig::builder().build();
        let err = Function::from_env_with(&Env::from_map::<&str, &str>([]), &sdk).unwrap_err();
        assert!(err.to_string().contains("PRESENCE_TABLE"), "{err}");
        let env = Env::from_map([
            ("PRESENCE_TABLE", "p"),
            ("ATTENDANCE_TABLE", "a"),
            ("MEMBERSHIP_TABLE", "m"),
            ("DOWNLINK_QUEUE_URL", "http://q"),
            ("UPLINK_PARENTS", "room"),
            ("DOWNLINK_PARENTS", "room"),
        ]);
        let err = Function::from_env_with(&env, &sdk).unwrap_err();
        assert!(err.to_string().contains("DOWNLINK_PARENTS"), "{err}");
    }

    #[test]
    fn a_first_transition_is_announced_and_not_twice() {
        assert_eq!(
            announce(BecameOnline, None, true),
            Announce::Transition { online: true }
        );
        assert_eq!(
            announce(BecameOffline, None, false),
            Announce::Transition { online: false }
        );
        assert_eq!(announce(Unchanged, None, true), Announce::Nothing);
        assert_eq!(
            announce(BecameOnline, Some(BecameOnline), true),
            Announce::Nothing
        );
    }

    #[test]
    fn an_announcement_overtaken_by_a_concurrent_writer_is_corrected() {
        // We said "offline", but on re-reading another channel had opened meanwhile.
        assert_eq!(
            announce(Unchanged, Some(BecameOffline), true),
            Announce::Correction { online: true }
        );
        // We said "online", but the re-read shows the client was online already: the
        // correction repeats the state the rooms should hold.
        assert_eq!(
            announce(Unchanged, Some(BecameOnline), true),
            Announce::Correction { online: true }
        );
        // A correction is itself not repeated on a further attempt.
        assert_eq!(
            announce(Unchanged, Some(Unchanged), true),
            Announce::Nothing
        );
    }
}
