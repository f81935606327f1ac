//! One student floods a room (issue 14): the run shared by the end-to-end flood test
//! (`tests/flood.rs`, limits on, asserted) and `bench-flood` (limits off and on, printed).
//!
//! In a fresh room, a watcher (a teacher), the flooder and a second student join. The flooder
//! publishes [`FloodPlan::chats`] chats back to back while the second student sends one chat
//! every [`FloodPlan::other_every`] ([`FloodPlan::other_chats`] in all). The watcher records
//! which chats reach the room and when; the flooder's P2P topic records its `rejected`
//! `rate_limited` notices. The run waits until every chat of the second student arrived (or
//! [`FloodPlan::deliver_within`] passed), then until no chat of the flooder arrived for
//! [`FloodPlan::settle`].
//!
//! Two limits stand between the flooder and the room: the broker's per-connection publish limit
//! (AWS IoT Core's 100 per second, the plugin's `publish_per_second`, `PUBLISH_PER_SECOND` for
//! the stack) and moderation's per-sender chat rate (`CHAT_RATE_LIMIT` chats per
//! `CHAT_RATE_WINDOW_SECS`-second window, one `rate_limited` notice per window). With both on,
//! at most `CHAT_RATE_LIMIT` chats per window reach the room, and the flood's chats lie in at
//! most `ceil(flood seconds) + 1` windows ([`FloodReport::windows_touched`]).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{Error, Msg, Stack, Transcript, members_at_least};

/// What to send.
#[derive(Debug, Clone)]
pub struct FloodPlan {
    /// The flooder's chats, back to back.
    pub chats: usize,
    /// The second student's chats during the flood.
    pub other_chats: usize,
    /// Its pace.
    pub other_every: Duration,
    /// How long the second student's chats may take to arrive in all.
    pub deliver_within: Duration,
    /// Quiet time (no flooder chat arriving) that ends the run.
    pub settle: Duration,
}

impl Default for FloodPlan {
    fn default() -> Self {
        Self {
            chats: 1000,
            other_chats: 25,
            other_every: Duration::from_millis(200),
            deliver_within: Duration::from_secs(120),
            settle: Duration::from_secs(3),
        }
    }
}

/// What happened.
#[derive(Debug, Clone)]
pub struct FloodReport {
    /// The room (fresh per run).
    pub room: String,
    /// Flooder chats sent.
    pub sent: usize,
    /// From the flooder's first publish to its last being queued and every PUBACK received.
    pub flood_time: Duration,
    /// Distinct flooder chats that reached the room (seen by the watcher).
    pub delivered: usize,
    /// Chats (either student's) that arrived again (at-least-once redeliveries).
    pub duplicates: usize,
    /// `rejected` `rate_limited` notices the flooder got.
    pub notices: usize,
    /// The second student's chats sent.
    pub other_sent: usize,
    /// Their publish -> watcher delivery latencies, sorted (missing ones are not in it).
    pub other_latencies: Vec<Duration>,
    /// From the flood's start until the second student's last chat arrived.
    pub other_all_in: Option<Duration>,
}

impl FloodReport {
    /// The second student's chats that never arrived.
    pub fn other_missing(&self) -> usize {
        self.other_sent.saturating_sub(self.other_latencies.len())
    }

    /// The rate windows of `window` the flood's chats can lie in: their broker timestamps are
    /// within [`FloodReport::flood_time`], which touches at most `ceil(t / window) + 1` windows.
    pub fn windows_touched(&self, window: Duration) -> usize {
        let w = window.as_secs_f64().max(f64::MIN_POSITIVE);
        (self.flood_time.as_secs_f64() / w).ceil() as usize + 1
    }

    /// A latency percentile of the second student's chats (0 when none arrived).
    pub fn other_pct(&self, p: f64) -> Duration {
        let l = &self.other_latencies;
        if l.is_empty() {
            return Duration::ZERO;
        }
        let i = ((l.len() as f64 - 1.0) * p).round() as usize;
        l[i.min(l.len() - 1)]
    }

    /// One line for the log.
    pub fn line(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "flooder sent {} in {:.0} ms -> {} reached the room ({} duplicates), {} rate_limited \
             notices; other student: {}/{} delivered, min {:.0} ms, p50 {:.0} ms, max {:.0} ms, \
             all in after {}",
            self.sent,
            ms(self.flood_time),
            self.delivered,
            self.duplicates,
            self.notices,
            self.other_latencies.len(),
            self.other_sent,
            ms(self.other_latencies.first().copied().unwrap_or_default()),
            ms(self.other_pct(0.5)),
            ms(self.other_latencies.last().copied().unwrap_or_default()),
            self.other_all_in.map_or_else(
                || "never".to_owned(),
                |d| format!("{:.1} s", d.as_secs_f64())
            ),
        )
    }
}

/// What the watcher saw of the room.
struct Seen<'a> {
    room_topic: &'a str,
    flooder: &'a str,
    sent_at: &'a HashMap<String, Instant>,
    flood: HashSet<String>,
    duplicates: usize,
    other: HashMap<String, Duration>,
    last_flood: Instant,
}

impl Seen<'_> {
    fn take(&mut self, m: &Msg) {
        if m.topic != self.room_topic {
            return;
        }
        let text = m.field("msg");
        if m.field("peer") == self.flooder {
            self.last_flood = m.at;
            if !self.flood.insert(text.to_owned()) {
                self.duplicates += 1;
            }
        } else if let Some(t) = self.sent_at.get(text) {
            if self.other.contains_key(text) {
                self.duplicates += 1;
            } else {
                self.other.insert(text.to_owned(), m.at.duration_since(*t));
            }
        }
    }
}

/// Runs the flood on `stack` with fresh client IDs (`GID_*@@@9<tag>..`) in a fresh room.
pub async fn run(stack: &Stack, plan: &FloodPlan, log: &Transcript) -> Result<FloodReport, Error> {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let room = format!("flood-{}", &tag[..8]);
    let n = &tag[..6];
    let (watcher_id, flooder_id, other_id) = (
        format!("GID_teacher@@@9{n}"),
        format!("GID_student@@@9{n}1"),
        format!("GID_student@@@9{n}2"),
    );
    let rooms = [room.as_str()];
    let mut watcher = stack
        .peer("teacher", &watcher_id, &rooms, false, log)
        .await?;
    let mut flooder = stack
        .peer("flooder", &flooder_id, &rooms, false, log)
        .await?;
    let mut other = stack.peer("other", &other_id, &rooms, false, log).await?;
    for p in [&mut watcher, &mut flooder, &mut other] {
        p.subscribe_classroom(&room).await?;
        p.command(&json!({"type": "join", "roomId": room})).await?;
    }
    let ddb = stack.ddb().await;
    if !members_at_least(stack, &ddb, &room, 3, Duration::from_secs(30)).await {
        return Err(Error::Stack(format!(
            "the three clients never joined {room}"
        )));
    }
    let mut rx = watcher.take_receiver();
    let room_topic = format!("room/message/{room}");

    let start = Instant::now();
    let pubacks_before = flooder.pubacks();
    let flood = async {
        for i in 0..plan.chats {
            flooder.chat(&room, &format!("flood {i}")).await?;
        }
        // Every flooder publish answered (accepted, or dropped by the broker's limit).
        let acked = flooder
            .pubacks_at_least(pubacks_before + plan.chats, Duration::from_secs(60))
            .await;
        if !acked {
            return Err(Error::Mqtt(format!(
                "the flooder got {} of {} PUBACKs",
                flooder.pubacks() - pubacks_before,
                plan.chats
            )));
        }
        Ok::<Duration, Error>(start.elapsed())
    };
    let paced = async {
        let mut sent_at: HashMap<String, Instant> = HashMap::new();
        let t0 = tokio::time::Instant::now();
        for i in 0..plan.other_chats {
            tokio::time::sleep_until(t0 + plan.other_every * i as u32).await;
            let text = format!("other {i} {tag}");
            sent_at.insert(text.clone(), Instant::now());
            other.chat(&room, &text).await?;
        }
        Ok::<HashMap<String, Instant>, Error>(sent_at)
    };
    let (flood_time, sent_at) = tokio::join!(flood, paced);
    let (flood_time, sent_at) = (flood_time?, sent_at?);

    // First arrivals only: the pipeline is at-least-once, so a chat can arrive twice.
    let mut seen = Seen {
        room_topic: &room_topic,
        flooder: &flooder_id,
        sent_at: &sent_at,
        flood: HashSet::new(),
        duplicates: 0,
        other: HashMap::new(),
        last_flood: Instant::now(),
    };
    let mut all_in = None;
    let deliver_by = tokio::time::Instant::now() + plan.deliver_within;
    while seen.other.len() < sent_at.len() {
        match tokio::time::timeout_at(deliver_by, rx.recv()).await {
            Ok(Some(m)) => seen.take(&m),
            _ => break,
        }
        if seen.other.len() == sent_at.len() {
            all_in = Some(start.elapsed());
        }
    }
    // Then until the flooder's chats stop arriving.
    let cap = tokio::time::Instant::now() + plan.deliver_within;
    loop {
        // `settle` after the flooder's last chat arrived (at once if that is longer ago).
        let quiet_until = tokio::time::Instant::from_std(seen.last_flood + plan.settle);
        if quiet_until <= tokio::time::Instant::now() {
            break;
        }
        match tokio::time::timeout_at(quiet_until.min(cap), rx.recv()).await {
            Ok(Some(m)) => seen.take(&m),
            _ => break,
        }
    }
    let (delivered, duplicates) = (seen.flood.len(), seen.duplicates);
    let mut latencies: Vec<Duration> = seen.other.into_values().collect();
    latencies.sort();
    let p2p = format!("room/p2p/{flooder_id}");
    let notices = flooder
        .received()
        .iter()
        .filter(|m| {
            m.topic == p2p && m.field("type") == "rejected" && m.field("reason") == "rate_limited"
        })
        .count();
    for p in [watcher, flooder, other] {
        p.leave().await;
    }
    Ok(FloodReport {
        room,
        sent: plan.chats,
        flood_time,
        delivered,
        duplicates,
        notices,
        other_sent: sent_at.len(),
        other_latencies: latencies,
        other_all_in: all_in,
    })
}
