//! The presence rule function (§5): lifecycle events (§4.4) in; per-channel presence and
//! per-connection attendance in DynamoDB; a status notice to each of the client's rooms on every
//! online/offline transition, through the downlink queue.
//!
//! # Layout
//! - [`Function`]: built once per container from the environment; [`Function::handle`] is the
//!   per-invocation entry point, shared by the Lambda `main` and the local event-source runner.
//! - The rule itself is pure and lives in `mapping::classroom::presence` (what to skip, the
//!   reducer, what to announce, what to write, corrections after a conflict); the DynamoDB
//!   adapter is `stores::presence` ([`PresenceStore`]: the items, the per-client version lock
//!   with the client's rooms, attendance). This crate is the IO around them.
//!
//! # One batch
//! `now` is read once per batch (it only judges whether an event is older than the 15-day
//! retention). Records are handled one after the other: events of one client must be applied
//! in turn; the version lock covers other containers.
//!
//! # One record: read -> decide -> send -> write
//! 1. Admit: parse the event ([`mapping::classroom::presence::admit`]). Events of clients whose
//!    ID is not classroom-shaped (no `@@@`: the backend's own MQTT connections) are skipped
//!    with a log line, events older than the retention are acknowledged and ignored; any other
//!    invalid event fails its record.
//! 2. Read the client's items (one Query): its channels, and the head item with the version
//!    and the rooms it joined (the moderation function's `join` keeps them there).
//! 3. Decide ([`Rule::decide`]): a duplicate changes nothing and ends here; otherwise the
//!    status notices (on a transition, one per room) and the write.
//! 4. Send the notices, then write the channel, the attendance item and the version bump in
//!    one transaction conditioned on the version read; on a conflict go back to 2 (at most
//!    [`MAX_ATTEMPTS`] times, then the record fails and is redelivered).
//!
//! # Channels whose offline event was lost
//! Before step 3, the client's channels still open longer than the longest connection
//! (`mapping::presence::MAX_SESSION_MS`, 24 h 10 min at the batch's `now`) are closed first,
//! each as an ordinary event through the same cycle
//! ([`mapping::classroom::presence::overdue_closures`]: a `tcpclean` at the channel's deadline,
//! reason `MAX_SESSION_EXCEEDED`, the usual offline notice if it was the last open channel);
//! then the client is read again and the record's event decided on the true state. This costs
//! nothing more unless a channel is overdue (the check uses the read step 2 makes anyway). A
//! client that never sends another event is not closed by this function: readers of its
//! presence must use `ClientPresence::as_of(now)` until a scheduled sweep closes it (none is
//! deployed yet; see the README, "Presence").
//!
//! Notices go out *before* the write: if the write fails the record is redelivered, recomputes
//! the same transition and resends the same notice IDs (clients de-duplicate); writing first
//! would lose the notice, because the redelivered event would then be a duplicate. If a
//! conflict changes the outcome after a notice went out, a corrective status notice with the
//! client's current state follows.
//!
//! DynamoDB requests: 1 for a duplicate, 2 for any other event, a transition included (plus one
//! `SendMessageBatch` for a transition); each conflict adds a read and a write. The handler
//! tests count them on the SDK client's real requests (`make bench-presence`).

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use kit::{
    BatchError, ConfigError, Env, Metrics, Outcome, OutgoingMessage, RecordError, SendError,
    Settler, SqsSender, each_record, process_batch,
};
use mapping::classroom::presence::{Admission, Rule, Snapshot, Step, admit, overdue_closures};
use mapping::{ClientId, LifecycleEvent, Notice, RulesConfig, Transition};
use stores::{PresenceStore, StoreError, WriteOutcome};
use tracing::{debug, info, warn};

/// Attempts at the read-decide-write cycle before a conflicting record is left to redelivery.
pub const MAX_ATTEMPTS: u32 = 5;

/// Why an event could not be applied. All are worth a retry.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Every attempt found the client's state changed by another writer.
    #[error("the client's presence kept changing while we wrote it ({attempts} attempts)")]
    Conflict {
        /// The attempts made.
        attempts: u32,
    },
    /// A status notice could not be sent.
    #[error("status notice not sent: {0}")]
    Send(#[from] SendError),
}

impl From<PresenceError> for RecordError {
    fn from(e: PresenceError) -> Self {
        match e {
            e @ PresenceError::Conflict { .. } => RecordError::transient("presence_conflict", e),
            PresenceError::Store(e) => RecordError::transient("dynamodb", e),
            PresenceError::Send(e) => e.into(),
        }
    }
}

/// What one sweep did ([`Function::sweep`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Clients with a channel open longer than the longest connection.
    pub clients: usize,
    /// Channels closed.
    pub closed: usize,
    /// Status notices sent.
    pub notices: usize,
    /// Clients whose closing failed (logged; the next sweep tries again).
    pub failed: usize,
}

/// What one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// The online/offline transition.
    pub transition: Transition,
    /// Whether the event changed the stored state (false for a duplicate).
    pub changed: bool,
    /// Read-decide(-write) attempts: 1 unless a concurrent writer conflicted.
    pub attempts: u32,
    /// Status notices sent (one per room, plus corrections), those of `closed` included.
    pub notices: usize,
    /// Overdue channels of the client closed first (`MAX_SESSION_EXCEEDED`).
    pub closed: usize,
}

/// The presence function: store, downlink sender, rules.
#[derive(Debug, Clone)]
pub struct Function {
    store: PresenceStore,
    sender: SqsSender,
    downlink_queue_url: String,
    rules: RulesConfig,
    /// Now, ms since the epoch, read once per batch: judges whether an event is older than
    /// the retention.
    clock: fn() -> u64,
    settler: Option<Settler>,
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
            settler: None,
        }
    }

    /// The same function settling its failed records with `settler` (dead letters with their
    /// reason, retries after backoff); [`Function::from_env_with`] builds one from the
    /// environment ([`kit::Settler::from_env`]).
    #[must_use]
    pub fn with_settler(self, settler: Settler) -> Self {
        Self {
            settler: Some(settler),
            ..self
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
        )
        .with_settler(Settler::from_env(env, sdk, "presence")?))
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
    /// client must be applied in turn; the version lock covers other containers). The clock
    /// is read once, for the whole batch.
    pub async fn handle(&self, mut event: SqsEvent) -> Result<SqsBatchResponse, BatchError> {
        let now_ms = (self.clock)();
        let metrics = Metrics::new("presence");
        let metrics = &metrics;
        let response = process_batch(&mut event, self.settler.as_ref(), |records| async move {
            each_record(&records, |record| {
                self.handle_record(record.message, now_ms, metrics)
            })
            .await
        })
        .await;
        metrics.emit();
        response
    }

    async fn handle_record(&self, message: &SqsMessage, now_ms: u64, metrics: &Metrics) -> Outcome {
        let tag = message
            .message_attributes
            .get("tag")
            .and_then(|a| a.string_value.as_deref());
        let body = message.body.as_deref().unwrap_or_default();
        let rule = match admit(body, tag, now_ms)? {
            Admission::Apply(rule) => rule,
            Admission::NotClassroom { client } => {
                info!(client_id = %client, skipped = true, "not a classroom client ID; presence not tracked");
                return Ok(());
            }
            Admission::Stale(event) => {
                warn!(client_id = %event.client_id, channel_id = %event.channel_id, time_ms = event.time_ms, "lifecycle event older than the retention (15 days); ignored");
                return Ok(());
            }
        };
        // Boxed: the read-decide-send-write future is deep (SDK futures inside a retry loop).
        let effect = Box::pin(self.run(rule, Some(now_ms))).await?;
        // Metrics (see `kit::metrics`): each online/offline transition written, and each
        // channel closed at the age bound (an offline transition or not).
        if effect.changed {
            match effect.transition {
                Transition::BecameOnline => {
                    metrics.count_by("PresenceTransitions", "Direction", "online", 1);
                }
                Transition::BecameOffline => {
                    metrics.count_by("PresenceTransitions", "Direction", "offline", 1);
                }
                Transition::Unchanged => {}
            }
        }
        if effect.closed > 0 {
            metrics.count("ChannelsClosedAtBound", effect.closed as u64);
        }
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

    /// Applies one event: read, decide, send, write (see the crate docs). No staleness check
    /// ([`Function::handle`] does that) and no clock: overdue channels are not closed (see
    /// [`Function::apply_at`]).
    pub async fn apply(&self, event: &LifecycleEvent) -> Result<Effect, PresenceError> {
        self.run(Rule::new(event.clone()), None).await
    }

    /// As [`Function::apply`] at `now_ms`, as [`Function::handle`] applies each record: the
    /// client's channels overdue at `now_ms` are closed first (see the crate docs).
    pub async fn apply_at(
        &self,
        event: &LifecycleEvent,
        now_ms: u64,
    ) -> Result<Effect, PresenceError> {
        self.run(Rule::new(event.clone()), Some(now_ms)).await
    }

    /// The scheduled sweep: closes every channel still open `mapping::presence::MAX_SESSION_MS`
    /// (24 h + 10 min) after its connect, for clients that never send another event (their
    /// offline event was lost and they never came back), each as the next event would: the
    /// channel closed with `MAX_SESSION_EXCEEDED`, the offline notice to the client's rooms when
    /// it was the last one open. One client's failure does not stop the others.
    pub async fn sweep(&self, now_ms: u64) -> Result<Swept, PresenceError> {
        let cutoff = now_ms.saturating_sub(mapping::presence::MAX_SESSION_MS);
        let clients = self.store.open_since_before(cutoff).await?;
        let mut swept = Swept {
            clients: clients.len(),
            ..Swept::default()
        };
        for client in &clients {
            let closed = async {
                let snapshot = self.store.read(client).await?;
                let closures = overdue_closures(client, &snapshot.presence, now_ms);
                self.close_overdue(closures).await
            };
            match Box::pin(closed).await {
                Ok((count, notices)) => {
                    swept.closed += count;
                    swept.notices += notices;
                }
                Err(e) => {
                    warn!(client_id = %client, error = %e, "sweep: closing failed; the next sweep tries again");
                    swept.failed += 1;
                }
            }
        }
        info!(
            clients = swept.clients,
            closed = swept.closed,
            notices = swept.notices,
            failed = swept.failed,
            "sweep done"
        );
        let metrics = Metrics::new("presence-sweep");
        metrics.count("ChannelsClosedAtBound", swept.closed as u64);
        metrics.count("SweepFailures", swept.failed as u64);
        metrics.emit();
        Ok(swept)
    }

    /// Closes `closures` (overdue channels), each through the whole cycle: (count, notices).
    async fn close_overdue(
        &self,
        closures: Vec<LifecycleEvent>,
    ) -> Result<(usize, usize), PresenceError> {
        let mut notices = 0;
        let count = closures.len();
        for event in closures {
            warn!(
                client_id = %event.client_id,
                channel_id = %event.channel_id,
                offline_at = event.time_ms,
                "channel open longer than the longest connection (its offline event was lost): closing it (MAX_SESSION_EXCEEDED)"
            );
            // Boxed: `run` calls this, which calls `run` (without a clock: no further closures).
            let effect = Box::pin(self.run(Rule::new(event), None)).await?;
            notices += effect.notices;
        }
        Ok((count, notices))
    }

    async fn run(&self, mut rule: Rule, now_ms: Option<u64>) -> Result<Effect, PresenceError> {
        let mut notices = 0;
        let mut closed = 0;
        // Overdue channels are looked for once, on the first read.
        let mut check = now_ms;
        while rule.attempts() < MAX_ATTEMPTS {
            let snapshot = self.store.read(&rule.event().client_id).await?;
            if let Some(now_ms) = check.take() {
                let closures =
                    overdue_closures(&rule.event().client_id, &snapshot.presence, now_ms);
                if !closures.is_empty() {
                    let (count, sent) = self.close_overdue(closures).await?;
                    closed += count;
                    notices += sent;
                    // Decide the record's event on the state the closures left.
                    continue;
                }
            }
            let (transition, batch, write) = match rule.decide(&snapshot) {
                Step::Duplicate { transition } => {
                    debug!("duplicate event: nothing to write");
                    return Ok(self.logged(&rule, transition, false, notices, closed));
                }
                Step::Write {
                    transition,
                    notices,
                    write,
                } => (transition, notices, write),
            };
            self.send(&batch).await?;
            notices += batch.len();
            match self.store.write(&write).await? {
                WriteOutcome::Written => {
                    return Ok(self.logged(&rule, transition, true, notices, closed));
                }
                WriteOutcome::Conflict => {
                    warn!(
                        attempt = rule.attempts(),
                        read_version = write.read_version,
                        "presence changed concurrently; reading again"
                    );
                    if rule.attempts() < MAX_ATTEMPTS {
                        tokio::time::sleep(backoff(rule.attempts() - 1)).await;
                    }
                }
            }
        }
        Err(PresenceError::Conflict {
            attempts: rule.attempts(),
        })
    }

    fn logged(
        &self,
        rule: &Rule,
        transition: Transition,
        changed: bool,
        notices: usize,
        closed: usize,
    ) -> Effect {
        let event = rule.event();
        let effect = Effect {
            transition,
            changed,
            attempts: rule.attempts(),
            notices,
            closed,
        };
        info!(
            client_id = %event.client_id,
            channel_id = %event.channel_id,
            kind = %event.kind,
            transition = ?effect.transition,
            changed = effect.changed,
            attempts = effect.attempts,
            closed = effect.closed,
            notices = effect.notices,
            "lifecycle event applied"
        );
        effect
    }

    /// Whether a client is online, and on which channels (the state the rule reads).
    pub async fn query(&self, client: &ClientId) -> Result<Snapshot, StoreError> {
        self.store.read(client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_conflict_that_never_ends_is_a_transient_record_error() {
        let e = RecordError::from(PresenceError::Conflict { attempts: 5 });
        assert_eq!(e.kind(), "presence_conflict");
        assert!(e.retryable());
    }
}
