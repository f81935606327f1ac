//! The presence rule (`mapping::classroom::presence`) without IO: records admitted or
//! skipped, the write and the notices decided from a state read, the retries after a
//! conflict (no repeat, corrections), and the notice IDs that make redeliveries harmless.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use mapping::classroom::presence::{
    Admission, PresenceWrite, Rule, Snapshot, Step, admit, event_source_id, status_notices,
};
use mapping::notice::NoticeType;
use mapping::presence::RETENTION_MS;
use mapping::{
    ChannelState, ClientId, ClientPresence, LifecycleEvent, LifecycleKind, Notice, RoomId,
    Transition,
};

const STUDENT: &str = "GID_student@@@002";
const NOW: u64 = 1_732_240_000_000;

fn ev(kind: LifecycleKind, time_ms: u64, channel: &str) -> LifecycleEvent {
    LifecycleEvent {
        client_id: ClientId::parse(STUDENT).unwrap(),
        kind,
        time_ms,
        channel_id: channel.to_owned(),
        client_ip: None,
        reason: None,
    }
}

fn rooms(ids: &[&str]) -> Vec<RoomId> {
    ids.iter().map(|r| RoomId::parse(r).unwrap()).collect()
}

/// The state after `events`, at `version`, member of `rooms`.
fn read(events: &[LifecycleEvent], version: u64, joined: &[&str]) -> Snapshot {
    Snapshot {
        presence: ClientPresence::from_events(events),
        version,
        rooms: rooms(joined),
    }
}

/// (sub-topic, message ID, online?) of each notice.
fn summary(notices: &[Notice]) -> Vec<(String, String, bool)> {
    notices
        .iter()
        .map(|n| {
            let Notice::Status(s) = n else {
                panic!("not a status notice: {n:?}")
            };
            (
                n.to_downlink().second_topic.to_string(),
                n.msg_id().to_owned(),
                s.kind == NoticeType::Online,
            )
        })
        .collect()
}

fn write_of(step: Step) -> (Transition, Vec<Notice>, PresenceWrite) {
    match step {
        Step::Write {
            transition,
            notices,
            write,
        } => (transition, notices, write),
        Step::Duplicate { .. } => panic!("a duplicate, not a write"),
    }
}

#[test]
fn a_seeds_record_is_admitted_and_a_backend_connection_is_skipped() {
    let body = r#"{"clientId":"GID_student@@@002","time":1732240000000,"eventType":"connect","channelId":"c1","clientIp":"203.0.113.7:52100"}"#;
    let Admission::Apply(rule) = admit(body, Some("connect"), NOW).unwrap() else {
        panic!("not admitted")
    };
    assert_eq!(rule.event().channel_id, "c1");
    assert_eq!(rule.attempts(), 0);

    let backend = r#"{"clientId":"backend-inflow-7f3a9c","timestamp":1732240000000,"eventType":"connected","sessionIdentifier":"9b8c7d6e-0000-4000-8000-000000000001","ipAddress":"198.51.100.23","versionNumber":0}"#;
    assert_eq!(
        admit(backend, None, NOW).unwrap(),
        Admission::NotClassroom {
            client: "backend-inflow-7f3a9c".to_owned()
        }
    );
    // Classroom-shaped but invalid: an error, the record fails.
    let bad = r#"{"clientId":"GID_student@@@0/2","time":1732240000000,"eventType":"connect","channelId":"c2"}"#;
    assert!(admit(bad, Some("connect"), NOW).is_err());
    assert!(admit("not json", None, NOW).is_err());
}

#[test]
fn an_event_older_than_the_retention_is_stale_and_one_within_it_applies() {
    let body = r#"{"clientId":"GID_student@@@002","time":1732240000000,"eventType":"connect","channelId":"c1"}"#;
    let sixteen_days = NOW + 16 * 24 * 3600 * 1000;
    assert!(matches!(
        admit(body, Some("connect"), sixteen_days).unwrap(),
        Admission::Stale(e) if e.time_ms == NOW
    ));
    assert!(matches!(
        admit(body, Some("connect"), NOW + RETENTION_MS).unwrap(),
        Admission::Apply(_)
    ));
    // A clock behind the event's is not a reason to drop it.
    assert!(matches!(
        admit(body, Some("connect"), NOW - 5_000).unwrap(),
        Admission::Apply(_)
    ));
}

#[test]
fn a_first_connect_announces_online_to_every_room_and_writes_the_attendance_rooms() {
    let event = ev(LifecycleKind::Connect, 10, "a");
    let mut rule = Rule::new(event.clone());
    let (transition, notices, write) = write_of(rule.decide(&read(&[], 0, &["1", "2"])));
    assert_eq!(transition, Transition::BecameOnline);
    let source = event_source_id(&event);
    assert_eq!(source, "GID_student@@@002:a:connect");
    assert_eq!(
        summary(&notices),
        [
            ("/status/1".to_owned(), format!("{source}:status-1"), true),
            ("/status/2".to_owned(), format!("{source}:status-2"), true),
        ]
    );
    assert!(notices.iter().all(|n| n.ts() == 10));
    assert_eq!(
        write,
        PresenceWrite {
            client: ClientId::parse(STUDENT).unwrap(),
            channel: "a".to_owned(),
            state: ChannelState {
                connected_at: Some(10),
                ..ChannelState::default()
            },
            read_version: 0,
            rooms: rooms(&["1", "2"]),
            online: true,
        }
    );
    assert_eq!(rule.attempts(), 1);
}

#[test]
fn a_transition_without_rooms_announces_nothing_and_still_writes() {
    let mut rule = Rule::new(ev(LifecycleKind::Connect, 1, "a"));
    let (transition, notices, write) = write_of(rule.decide(&read(&[], 0, &[])));
    assert_eq!((transition, notices.len()), (Transition::BecameOnline, 0));
    assert_eq!((write.read_version, write.online), (0, true));
    assert!(write.rooms.is_empty());
}

#[test]
fn a_change_without_transition_writes_without_notices_or_attendance_rooms() {
    let history = [ev(LifecycleKind::Connect, 1, "a")];
    let mut rule = Rule::new(ev(LifecycleKind::Connect, 2, "b"));
    let (transition, notices, write) = write_of(rule.decide(&read(&history, 3, &["1"])));
    assert_eq!(transition, Transition::Unchanged);
    assert!(notices.is_empty());
    assert!(
        write.rooms.is_empty(),
        "rooms go to attendance only when announcing"
    );
    assert_eq!((write.read_version, write.online), (3, true));
}

#[test]
fn the_last_channel_closing_announces_offline_at_the_events_time() {
    let history = [ev(LifecycleKind::Connect, 1, "a")];
    let event = ev(LifecycleKind::TcpClean, 7, "a");
    let mut rule = Rule::new(event.clone());
    let (transition, notices, write) = write_of(rule.decide(&read(&history, 1, &["1"])));
    assert_eq!(transition, Transition::BecameOffline);
    assert_eq!(
        summary(&notices),
        [(
            "/status/1".to_owned(),
            format!("{}:status-1", event_source_id(&event)),
            false
        )]
    );
    assert_eq!(notices[0].ts(), 7);
    assert!(!write.online);
    assert_eq!(write.state.offline.as_ref().map(|o| o.at), Some(7));
    assert_eq!(write.rooms, rooms(&["1"]));
}

#[test]
fn a_duplicate_decides_nothing() {
    let history = [ev(LifecycleKind::Connect, 1, "a")];
    let mut rule = Rule::new(ev(LifecycleKind::Connect, 1, "a"));
    assert_eq!(
        rule.decide(&read(&history, 1, &["1"])),
        Step::Duplicate {
            transition: Transition::Unchanged
        }
    );
}

#[test]
fn a_redelivery_decides_the_same_notice_ids() {
    let event = ev(LifecycleKind::Connect, 10, "a");
    let snapshot = read(&[], 0, &["1"]);
    let (_, first, w1) = write_of(Rule::new(event.clone()).decide(&snapshot));
    let (_, again, w2) = write_of(Rule::new(event).decide(&snapshot));
    assert_eq!(first, again);
    assert_eq!(w1, w2);
}

#[test]
fn a_retry_after_a_conflict_does_not_announce_the_same_transition_twice() {
    let mut rule = Rule::new(ev(LifecycleKind::Connect, 10, "a"));
    let (_, first, _) = write_of(rule.decide(&read(&[], 0, &["1"])));
    assert_eq!(first.len(), 1);
    // The write conflicted (a join bumped nothing but was in flight): the re-read shows the
    // same picture at the same version; the same transition, not announced again.
    let (transition, again, write) = write_of(rule.decide(&read(&[], 0, &["1"])));
    assert_eq!(transition, Transition::BecameOnline);
    assert!(again.is_empty());
    assert!(write.rooms.is_empty());
    assert_eq!(rule.attempts(), 2);
}

#[test]
fn an_announcement_overtaken_by_a_concurrent_writer_is_corrected_once() {
    // Attempt 0: the last channel closes, "offline" goes out; the write conflicts.
    let open = [ev(LifecycleKind::Connect, 1, "a")];
    let event = ev(LifecycleKind::TcpClean, 5, "a");
    let mut rule = Rule::new(event.clone());
    let (t0, n0, _) = write_of(rule.decide(&read(&open, 1, &["1"])));
    assert_eq!((t0, summary(&n0)[0].2), (Transition::BecameOffline, false));
    // Attempt 1: meanwhile another container opened channel b: the client stays online. The
    // rooms were told "offline": the correction says "online", with its own ID.
    let both = [
        ev(LifecycleKind::Connect, 1, "a"),
        ev(LifecycleKind::Connect, 3, "b"),
    ];
    let (t1, n1, w1) = write_of(rule.decide(&read(&both, 2, &["1"])));
    assert_eq!(t1, Transition::Unchanged);
    assert_eq!(
        summary(&n1),
        [(
            "/status/1".to_owned(),
            format!("{}:status-1-fix1", event_source_id(&event)),
            true
        )]
    );
    assert_eq!((w1.read_version, w1.online), (2, true));
    assert_eq!(w1.rooms, rooms(&["1"]));
    // Attempt 2: another conflict, the same picture: the correction is not repeated.
    let (_, n2, w2) = write_of(rule.decide(&read(&both, 3, &["1"])));
    assert!(n2.is_empty());
    assert!(w2.rooms.is_empty());
}

#[test]
fn status_notices_derive_their_ids_from_the_event_the_room_and_the_suffix() {
    let event = ev(LifecycleKind::Disconnect, 9, "ch");
    let notices = status_notices(&event, false, &rooms(&["r1"]), "-fix3");
    assert_eq!(
        summary(&notices),
        [(
            "/status/r1".to_owned(),
            "GID_student@@@002:ch:disconnect:status-r1-fix3".to_owned(),
            false
        )]
    );
    assert!(status_notices(&event, true, &[], "").is_empty());
}
