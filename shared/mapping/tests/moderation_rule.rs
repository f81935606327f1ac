//! Every moderation fixture (`functions/moderation/tests/fixtures/*.json`, the files the
//! function's handler tests and `cargo lambda invoke` use) through the pure rule, record by
//! record in batch order, against an in-memory model of the store: one snapshot per fixture of
//! the full decision (what was read, the writes, the notices, the log fact) and the state the
//! writes leave. No DynamoDB, no queue: the moderation function's handler test checks that
//! the real stack sends exactly the `sent` notices of these snapshots.
//!
//! The model is what the stores' tests check against moto: enrollments by client and room,
//! mute items kept in command order ([`MuteChange::outcome_over`]), memberships (first join
//! kept), the rooms on a client's presence head, one chat counter per sender and rate window;
//! nobody online (the presence function is not part of these fixtures).

#![allow(clippy::expect_used)] // a fixture that cannot be read is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::records;
use mapping::classroom::moderation::{
    ChatWindow, Membership, Moderation, MuteChange, MuteOutcome, MuteState, Read, RoomMembers,
    Standing, Write,
};
use mapping::outflow::Origin;
use mapping::{ClientId, Limits, Mode, Notice, Parent, Policy, Role, Roles, RoomId, RulesConfig};
use serde_json::{Value, json};

/// The banned words the moderation fixtures are written against.
const BANNED_WORDS: &str = "笨蛋,傻瓜,damn,shit";
/// Everyone the fixtures have speak, all enrolled in room 1 (the fixtures' room).
const CLASS: [&str; 4] = [
    "GID_teacher@@@001",
    "GID_teacher@@@002",
    "GID_student@@@001",
    "GID_student@@@002",
];
/// The fixtures' broker times are 1_732_240_000_000 ms and a few seconds after; the class is
/// enrolled until a day later.
const ENROLLED_UNTIL_S: u64 = 1_732_240_000 + 86_400;
/// The batch's `now`: only a record without a `timestamp` would use it (every fixture
/// record has one).
const NOW_MS: u64 = 1_732_240_010_000;

fn id(s: &str) -> ClientId {
    ClientId::parse(s).expect("valid client ID")
}

/// The store as the rule sees it.
#[derive(Debug, Default)]
struct Model {
    /// (client, room) -> `expiresAt`, s.
    enrollments: BTreeMap<(ClientId, RoomId), u64>,
    /// (room, student) -> the mute item.
    mutes: BTreeMap<(RoomId, ClientId), MuteState>,
    /// (room, member) -> (role, first join ms).
    members: BTreeMap<(RoomId, ClientId), (String, u64)>,
    /// client -> the rooms on its presence head.
    heads: BTreeMap<ClientId, BTreeSet<RoomId>>,
    /// The clients whose presence head says online.
    online: BTreeSet<ClientId>,
    /// Chats counted per sender and rate window.
    chats: BTreeMap<ChatWindow, u64>,
}

impl Model {
    fn class() -> Self {
        let mut model = Self::default();
        let room = RoomId::parse("1").expect("room 1");
        for client in CLASS {
            model
                .enrollments
                .insert((id(client), room.clone()), ENROLLED_UNTIL_S);
        }
        model
    }

    fn read(&self, sender: &ClientId, read: Read<'_>) -> Standing {
        let enrollment = |room: &RoomId| {
            self.enrollments
                .get(&(sender.clone(), room.clone()))
                .copied()
        };
        match read {
            Read::Standing(room) => Standing {
                enrollment_expires_at_s: enrollment(room),
                mute: self.mutes.get(&(room.clone(), sender.clone())).cloned(),
                ..Standing::default()
            },
            Read::Enrollment(room) => Standing {
                enrollment_expires_at_s: enrollment(room),
                ..Standing::default()
            },
            Read::Joining(room) => Standing {
                enrollment_expires_at_s: enrollment(room),
                rooms: Some(
                    self.heads
                        .get(sender)
                        .map(|rooms| rooms.iter().cloned().collect())
                        .unwrap_or_default(),
                ),
                ..Standing::default()
            },
        }
    }

    /// The store's atomic `ADD 1` on the window's counter: the new count.
    fn count(&mut self, window: &ChatWindow) -> u64 {
        let n = self.chats.entry(window.clone()).or_default();
        *n += 1;
        *n
    }

    fn change_mute(&mut self, change: &MuteChange) -> MuteOutcome {
        let key = (change.room_id.clone(), change.target.clone());
        let outcome = change.outcome_over(self.mutes.get(&key));
        if outcome == MuteOutcome::Written {
            self.mutes.insert(key, change.applied());
        }
        outcome
    }

    fn room_members(&self, room: &RoomId) -> RoomMembers {
        RoomMembers {
            members: self
                .members
                .iter()
                .filter(|((r, _), _)| r == room)
                .map(|((_, client), (role, _))| Membership {
                    client_id: client.clone(),
                    role: role.clone(),
                })
                .collect(),
            mutes: self
                .mutes
                .iter()
                .filter(|((r, _), _)| r == room)
                .map(|((_, client), state)| (client.clone(), state.clone()))
                .collect(),
            online: self.online.iter().cloned().collect(),
        }
    }

    fn state(&self) -> Value {
        json!({
            "mutes": self.mutes.iter().map(|((room, client), state)| json!({
                "roomId": room, "clientId": client, "item": state,
            })).collect::<Vec<_>>(),
            "members": self.members.iter().map(|((room, client), (role, joined_at))| json!({
                "roomId": room, "clientId": client, "role": role, "joinedAt": joined_at,
            })).collect::<Vec<_>>(),
            "presenceHeadRooms": self.heads,
            "chatCounters": self.chats.iter().map(|(window, n)| json!({
                "window": window, "chats": n,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A notice as the downlink queue carries it.
fn wire(notices: &[Notice]) -> Vec<Value> {
    notices
        .iter()
        .map(|n| {
            let d = n.to_downlink();
            json!({
                "mqttSecondTopic": d.second_topic,
                "mqttMessageId": d.message_id,
                "body": serde_json::from_str::<Value>(&d.body).expect("notice bodies are JSON"),
            })
        })
        .collect()
}

/// One record through the rule as the function handles it: decode, plan, read, decide,
/// write, (a teacher's join) read the members.
fn handle(rule: &Moderation, rules: &RulesConfig, model: &mut Model, record: &Value) -> Value {
    let queue_id = record["messageId"].as_str().expect("messageId");
    let attr = |key: &str| record["messageAttributes"][key]["stringValue"].as_str();
    let body = record["body"].as_str().unwrap_or_default();
    let failed = |e: mapping::MappingError| json!({ "messageId": queue_id, "failed": { "kind": e.kind(), "error": e.to_string() } });
    let origin = match Origin::decode(attr, queue_id, NOW_MS, rules) {
        Ok(origin) => origin,
        Err(e) => return failed(e),
    };
    let plan = match rule.plan(&origin, body) {
        Ok(plan) => plan,
        Err(e) => return failed(e),
    };
    let planned = serde_json::to_value(&plan).expect("plans serialise");
    // The function makes the read and the count concurrently; a chat is counted even when
    // its plan reads nothing (an unreadable chat).
    let window = rule.chat_window(&origin);
    let mut read = plan.read().map(|read| model.read(&origin.sender, read));
    if let Some(window) = &window {
        read.get_or_insert_with(Standing::default).chats_in_window = Some(model.count(window));
    }
    let decision = rule.decide(&origin, plan, &read.clone().unwrap_or_default());
    let mut mute_outcome = None;
    for write in &decision.writes {
        match write {
            Write::Join(join) => {
                let role = match join.role {
                    Role::Teacher => "teacher",
                    Role::Student => "student",
                    Role::Other => "other",
                };
                model
                    .members
                    .entry((join.room_id.clone(), join.client_id.clone()))
                    .and_modify(|(r, _)| role.clone_into(r))
                    .or_insert_with(|| (role.to_owned(), join.at_ms));
                model
                    .heads
                    .entry(join.client_id.clone())
                    .or_default()
                    .insert(join.room_id.clone());
            }
            Write::Mute(change) => mute_outcome = Some(model.change_mute(change)),
        }
    }
    let mut sent = match mute_outcome {
        Some(MuteOutcome::Superseded) => decision.if_superseded.clone().unwrap_or_default(),
        _ => decision.notices.clone(),
    };
    if let Some(room) = &decision.members_of {
        sent.extend(rule.members(&origin, room, model.room_members(room)));
    }
    json!({
        "messageId": queue_id,
        "origin": origin,
        "plan": planned,
        "chatWindow": window,
        "read": read,
        "writes": decision.writes,
        "muteOutcome": mute_outcome,
        "ifSuperseded": decision.if_superseded.as_deref().map(wire),
        "membersOf": decision.members_of,
        "fact": decision.fact,
        "sent": wire(&sent),
    })
}

/// The rule as the fixtures' function is configured (`mode` for banned words).
fn rule(mode: Mode) -> Moderation {
    Moderation::new(
        Policy::from_list(BANNED_WORDS, mode, 500).expect("policy builds"),
        Roles::default(),
    )
}

fn rules() -> RulesConfig {
    RulesConfig::new(
        vec![Parent::parse("roomSend").expect("parent")],
        vec![Parent::parse("room").expect("parent")],
        Limits::default(),
    )
    .expect("rules")
}

#[test]
fn every_moderation_fixture_decides_to_its_snapshot() {
    let (rule, rules) = (rule(Mode::Mask), rules());
    insta::glob!(
        "../../../functions/moderation/tests/fixtures",
        "*.json",
        |path| {
            let mut model = Model::class();
            let decided: Vec<Value> = records(path)
                .iter()
                .map(|record| handle(&rule, &rules, &mut model, record))
                .collect();
            insta::assert_json_snapshot!(
                "decision",
                json!({ "records": decided, "after": model.state() })
            );
        }
    );
}

/// A fixture's records, by name.
fn fixture(name: &str) -> Vec<Value> {
    records(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../../functions/moderation/tests/fixtures/{name}.json"
    )))
}

/// The fixtures through one rule and one model, batch after batch.
struct Class {
    rule: Moderation,
    rules: RulesConfig,
    model: Model,
}

impl Class {
    fn new(mode: Mode) -> Self {
        Self {
            rule: rule(mode),
            rules: rules(),
            model: Model::class(),
        }
    }

    /// The records' outcomes.
    fn run_records(&mut self, records: &[Value]) -> Vec<Value> {
        records
            .iter()
            .map(|r| handle(&self.rule, &self.rules, &mut self.model, r))
            .collect()
    }

    /// The notices a fixture's batch sends, sorted by ID.
    fn run(&mut self, name: &str) -> Vec<Value> {
        sent(&self.run_records(&fixture(name)))
    }

    fn enroll(&mut self, client: &str, room: &str, expires_at_s: u64) {
        self.model.enrollments.insert(
            (id(client), RoomId::parse(room).expect("room")),
            expires_at_s,
        );
    }
}

/// Every notice sent by these outcomes, sorted by ID.
fn sent(outcomes: &[Value]) -> Vec<Value> {
    let mut all: Vec<Value> = outcomes
        .iter()
        .flat_map(|o| o["sent"].as_array().cloned().unwrap_or_default())
        .collect();
    all.sort_by_key(|n| n["mqttMessageId"].as_str().unwrap_or_default().to_owned());
    all
}

/// (sub-topic, type or "chat", reason) of each notice, sorted.
fn summary(notices: &[Value]) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = notices
        .iter()
        .map(|n| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let kind = n["body"]["type"].as_str().unwrap_or("chat").to_owned();
            (
                text(&n["mqttSecondTopic"]),
                kind,
                text(&n["body"]["reason"]),
            )
        })
        .collect();
    out.sort();
    out
}

fn row(sub: &str, kind: &str, reason: &str) -> (String, String, String) {
    (sub.to_owned(), kind.to_owned(), reason.to_owned())
}

/// `record` with other attribute values.
fn with_attrs(mut record: Value, attrs: &[(&str, &str)]) -> Value {
    for (key, value) in attrs {
        record["messageAttributes"][*key]["stringValue"] = json!(value);
    }
    record
}

const TEACHER: &str = "GID_teacher@@@001";
const STUDENT1: &str = "GID_student@@@001";
const STUDENT2: &str = "GID_student@@@002";
const FIXTURE_S: u64 = 1_732_240_000;

#[test]
fn chat_is_fanned_out_with_the_broker_verified_peer_and_masked_words() {
    let mut class = Class::new(Mode::Mask);
    let spoofed = class.run("spoofed-peer");
    assert_eq!(spoofed.len(), 1);
    assert_eq!(spoofed[0]["mqttSecondTopic"], "/message/1");
    assert_eq!(
        spoofed[0]["body"]["peer"], STUDENT1,
        "never the body's peer"
    );
    let keys: Vec<&String> = spoofed[0]["body"]
        .as_object()
        .expect("object")
        .keys()
        .collect();
    assert_eq!(
        keys.len(),
        5,
        "exactly msgId, peer, roomId, msg, ts: {keys:?}"
    );
    for (name, text) in [
        ("chat-banned-words-chinese", "你是**吗"),
        ("chat-banned-words-english", "****, this is ****"),
        ("chat-full-width-and-mixed-case", "**** it, ****"),
    ] {
        let n = class.run(name);
        assert_eq!(n.len(), 1, "{name}");
        assert_eq!(n[0]["body"]["msg"], text, "{name}");
        assert_eq!(n[0]["body"]["masked"], true, "{name}");
    }
    let plain = class.run("chat-plain");
    assert_eq!(plain[0]["body"]["msg"], "老师好, good morning");
    assert_eq!(plain[0]["body"].get("masked"), None);
}

#[test]
fn reject_mode_and_the_length_limit_refuse_with_a_reason() {
    let mut class = Class::new(Mode::Reject);
    assert_eq!(
        summary(&class.run("chat-banned-words-chinese")),
        [row("/p2p/GID_student@@@001", "rejected", "banned_words")]
    );
    assert_eq!(
        summary(&class.run("chat-too-long")),
        [row("/p2p/GID_student@@@001", "rejected", "too_long")]
    );
}

#[test]
fn commands_from_students_at_teachers_or_malformed_are_refused_and_never_executed() {
    let mut class = Class::new(Mode::Mask);
    assert_eq!(
        summary(&class.run("mute-from-student")),
        [row("/p2p/GID_student@@@001", "rejected", "not_teacher")]
    );
    assert_eq!(
        summary(&class.run("mute-aimed-at-teacher")),
        [row(
            "/p2p/GID_teacher@@@001",
            "rejected",
            "target_not_student"
        )]
    );
    let malformed = class.run_records(&fixture("malformed-command"));
    assert_eq!(
        summary(&sent(&malformed)),
        [
            row("/p2p/GID_teacher@@@001", "rejected", "invalid_command"),
            row("/p2p/GID_teacher@@@001", "rejected", "invalid_command"),
        ]
    );
    assert!(
        malformed.iter().all(|o| o["read"].is_null()),
        "refused before any read"
    );
    assert!(class.model.mutes.is_empty());
}

#[test]
fn a_record_that_is_not_a_backend_message_fails_alone() {
    let mut class = Class::new(Mode::Mask);
    let good = fixture("chat-plain").remove(0);
    let mut no_client = good.clone();
    no_client["messageAttributes"]
        .as_object_mut()
        .expect("attributes")
        .remove("clientId");
    let status = with_attrs(good.clone(), &[("mqttSecondTopic", "/status")]);
    let outcomes = class.run_records(&[good, no_client, status]);
    assert_eq!(sent(&outcomes).len(), 1, "the good record went through");
    assert_eq!(outcomes[1]["failed"]["kind"], "missing_attribute");
    assert_eq!(outcomes[2]["failed"]["kind"], "invalid_attribute");
}

#[test]
fn chat_into_a_room_the_sender_is_not_enrolled_in_is_refused_and_reaches_nobody() {
    let mut class = Class::new(Mode::Mask);
    // Student 1 is enrolled in room 1 only; someone else's enrollment in room 2 is not its own.
    class.enroll(TEACHER, "2", ENROLLED_UNTIL_S);
    let notices = sent(&class.run_records(&fixture("room-not-enrolled")[..1]));
    assert_eq!(
        summary(&notices),
        [row("/p2p/GID_student@@@001", "rejected", "not_enrolled")]
    );
    assert_eq!(notices[0]["body"]["roomId"], "2");
    assert_eq!(notices[0]["body"]["refMsgId"], "GID_student@@@001-1");
    // A client enrolled nowhere is refused in room 1 too.
    let stranger = with_attrs(
        fixture("chat-plain").remove(0),
        &[("clientId", "GID_student@@@099")],
    );
    assert_eq!(
        summary(&sent(&class.run_records(&[stranger]))),
        [row("/p2p/GID_student@@@099", "rejected", "not_enrolled")]
    );
    // The same sender in its own room is fanned out.
    assert_eq!(
        summary(&class.run("chat-plain")),
        [row("/message/1", "chat", "")]
    );
}

#[test]
fn join_and_mute_in_a_room_the_sender_is_not_enrolled_in_are_refused_and_change_nothing() {
    let mut class = Class::new(Mode::Mask);
    let records = fixture("room-not-enrolled");
    let join = class.run_records(&records[1..2]);
    assert_eq!(
        summary(&sent(&join)),
        [row("/p2p/GID_student@@@001", "rejected", "not_enrolled")]
    );
    // A teacher moderates only the rooms its token grants: student 2 is not muted in room 2.
    let mute = sent(&class.run_records(&records[2..3]));
    assert_eq!(
        summary(&mute),
        [row("/p2p/GID_teacher@@@001", "rejected", "not_enrolled")]
    );
    assert_eq!(mute[0]["body"]["roomId"], "2");
    // The whole fixture: three refusals, no effect.
    let all = class.run_records(&records);
    assert_eq!(
        summary(&sent(&all)),
        [
            row("/p2p/GID_student@@@001", "rejected", "not_enrolled"),
            row("/p2p/GID_student@@@001", "rejected", "not_enrolled"),
            row("/p2p/GID_teacher@@@001", "rejected", "not_enrolled"),
        ]
    );
    assert!(join.iter().chain(&all).all(|o| o["writes"] == json!([])));
    assert!(class.model.members.is_empty());
    assert!(class.model.heads.is_empty(), "no room on the head");
    assert!(class.model.mutes.is_empty());
}

#[test]
fn an_enrollment_past_its_expiry_counts_as_none() {
    let mut class = Class::new(Mode::Mask);
    // chat-plain and join-room are sent at FIXTURE_S exactly: a token expiring then has
    // expired (expired at `exp`), one expiring a second later has not.
    class.enroll(STUDENT1, "1", FIXTURE_S);
    assert_eq!(
        summary(&class.run("chat-plain")),
        [row("/p2p/GID_student@@@001", "rejected", "not_enrolled")]
    );
    assert_eq!(
        summary(&class.run("join-room")),
        [row("/p2p/GID_student@@@001", "rejected", "not_enrolled")]
    );
    assert!(class.model.members.is_empty());
    class.enroll(STUDENT1, "1", FIXTURE_S + 1);
    assert_eq!(
        summary(&class.run("chat-plain")),
        [row("/message/1", "chat", "")]
    );
}

#[test]
fn scenario_2_the_teacher_mutes_a_student_who_is_told_by_p2p() {
    let mut class = Class::new(Mode::Mask);
    let notices = class.run("scenario-2-teacher-mutes-student");
    assert_eq!(
        summary(&notices),
        [
            row("/p2p/GID_student@@@002", "commandResult", ""),
            row("/p2p/GID_student@@@002", "mute", ""),
            row("/p2p/GID_teacher@@@001", "commandResult", ""),
            row("/p2p/GID_teacher@@@001", "commandResult", ""),
            row("/p2p/GID_teacher@@@001", "members", ""),
            row("/status/1", "online", ""),
            row("/status/1", "online", ""),
        ]
    );
    // The teacher joined first: the room's members were the teacher alone.
    let members = notices
        .iter()
        .find(|n| n["body"]["type"] == "members")
        .expect("members");
    assert_eq!(
        members["body"]["members"],
        json!([{"clientId": TEACHER, "role": "teacher", "online": false, "muted": false}])
    );
    let mute = notices
        .iter()
        .find(|n| n["body"]["type"] == "mute")
        .expect("mute");
    assert_eq!(mute["body"]["by"], TEACHER);
    assert_eq!(mute["body"]["roomId"], "1");
    assert_eq!(mute["body"]["until"], 1_732_240_001_000u64 + 600_000);
    assert_eq!(class.model.members.len(), 2);
    let mutes: Vec<_> = class.model.mutes.iter().collect();
    assert_eq!(mutes.len(), 1);
    assert_eq!(mutes[0].0.1, id(STUDENT2));
    assert!(mutes[0].1.muted);
    assert_eq!(
        class.model.heads.keys().collect::<Vec<_>>(),
        [&id(STUDENT2), &id(TEACHER)]
    );
}

#[test]
fn a_teacher_who_joins_gets_the_members_online_and_muted_and_a_student_does_not() {
    let mut class = Class::new(Mode::Mask);
    // Student 2 joins and is muted (until +600 s); student 1 joins; the teacher joined first.
    class.run("scenario-2-teacher-mutes-student");
    let join = fixture("scenario-2-teacher-mutes-student").remove(1);
    let join1 = with_attrs(
        join,
        &[
            ("mqttMessageId", "join-s1"),
            ("clientId", STUDENT1),
            ("timestamp", "1732240002000"),
        ],
    );
    let student_notices = sent(&class.run_records(&[join1]));
    assert!(
        student_notices
            .iter()
            .all(|n| n["body"]["type"] != "members"),
        "a student gets no member list: {student_notices:?}"
    );
    // What the presence function keeps on the head items: student 1 online, student 2 not.
    class.model.online.insert(id(STUDENT1));
    // The teacher (re)joins within student 2's mute.
    let rejoin = with_attrs(
        fixture("scenario-2-teacher-mutes-student").remove(0),
        &[
            ("mqttMessageId", "rejoin-t"),
            ("clientId", TEACHER),
            ("timestamp", "1732240003000"),
        ],
    );
    let notices = sent(&class.run_records(&[rejoin]));
    let members: Vec<&Value> = notices
        .iter()
        .filter(|n| n["body"]["type"] == "members")
        .collect();
    assert_eq!(members.len(), 1, "{notices:?}");
    assert_eq!(members[0]["mqttSecondTopic"], format!("/p2p/{TEACHER}"));
    assert_eq!(members[0]["mqttMessageId"], "rejoin-t:members-1");
    assert_eq!(
        members[0]["body"]["members"],
        json!([
            {"clientId": STUDENT1, "role": "student", "online": true, "muted": false},
            {"clientId": STUDENT2, "role": "student", "online": false, "muted": true},
            {"clientId": TEACHER, "role": "teacher", "online": false, "muted": false},
        ])
    );
    assert_eq!(
        (
            members[0]["body"]["part"].as_u64(),
            members[0]["body"]["parts"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

#[test]
fn a_redelivered_command_batch_has_no_second_effect_and_the_same_notice_ids() {
    let mut class = Class::new(Mode::Mask);
    let first = class.run("scenario-2-teacher-mutes-student");
    let (members, mutes) = (class.model.members.clone(), class.model.mutes.clone());
    let heads = class.model.heads.clone();
    let again = class.run("scenario-2-teacher-mutes-student");
    assert_eq!(class.model.members, members);
    assert_eq!(class.model.mutes, mutes, "one mute, unchanged");
    assert_eq!(class.model.heads, heads, "a redelivered join adds nothing");
    // Same notices with the same IDs: clients de-duplicate. A `members` notice is a snapshot
    // of the room when the join was handled (here student 2 has joined and is muted by the
    // time of the redelivery): same ID, so a client that got the first keeps it.
    let without_members = |v: &[Value]| -> Vec<Value> {
        v.iter()
            .map(|n| {
                let mut n = n.clone();
                if n["body"]["type"] == "members" {
                    n["body"]["members"] = Value::Null;
                }
                n
            })
            .collect()
    };
    assert_eq!(without_members(&again), without_members(&first));
}

#[test]
fn a_stale_mute_redelivered_after_an_unmute_does_not_mute_again() {
    let mut class = Class::new(Mode::Mask);
    class.run("chat-from-muted-student");
    let unmuted = class.run("unmute-student");
    assert!(unmuted.iter().any(|n| n["body"]["type"] == "unmute"));
    // The mute (and the chat) of the first batch come back: the mute is superseded.
    let outcomes = class.run_records(&fixture("chat-from-muted-student"));
    assert_eq!(outcomes[0]["muteOutcome"], "superseded");
    let notices = sent(&outcomes);
    assert!(
        notices
            .iter()
            .any(|n| n["body"]["type"] == "commandResult" && n["body"]["ok"] == false),
        "{notices:?}"
    );
    assert!(!notices.iter().any(|n| n["body"]["type"] == "mute"));
    let mutes: Vec<&MuteState> = class.model.mutes.values().collect();
    assert!(!mutes[0].muted);
}

#[test]
fn chat_from_a_muted_student_is_refused_and_not_fanned_out() {
    let mut class = Class::new(Mode::Mask);
    let notices = class.run("chat-from-muted-student");
    assert_eq!(
        summary(&notices),
        [
            row("/p2p/GID_student@@@002", "mute", ""),
            row("/p2p/GID_student@@@002", "rejected", "muted"),
            row("/p2p/GID_teacher@@@001", "commandResult", ""),
        ]
    );
    let rejected = notices
        .iter()
        .find(|n| n["body"]["type"] == "rejected")
        .expect("rejected");
    assert_eq!(rejected["body"]["refMsgId"], "GID_student@@@002-2000");
    assert_eq!(rejected["body"]["roomId"], "1");
}

#[test]
fn a_flood_from_one_sender_reaches_the_room_at_the_rate_and_is_told_once_per_window() {
    let mut class = Class::new(Mode::Mask);
    let sent = class.run("chat-flood-one-sender");
    let chats = |notices: &[Value], sender: &str| {
        notices
            .iter()
            .filter(|n| n["mqttSecondTopic"] == "/message/1" && n["body"]["peer"] == sender)
            .count()
    };
    // 12 chats of student 1 in one second and 1 in the next; 1 of student 2 amid them.
    assert_eq!(chats(&sent, "GID_student@@@001"), 10 + 1);
    assert_eq!(
        chats(&sent, "GID_student@@@002"),
        1,
        "another sender is not limited"
    );
    let told: Vec<_> = summary(&sent)
        .into_iter()
        .filter(|(_, kind, _)| kind == "rejected")
        .collect();
    assert_eq!(
        told,
        [row("/p2p/GID_student@@@001", "rejected", "rate_limited")]
    );
    // A redelivery of the whole batch counts again (at-least-once): the first second is
    // full, so all of its chats are dropped without a second notice; the next second and the
    // other sender had room left.
    let again = class.run("chat-flood-one-sender");
    assert_eq!(chats(&again, "GID_student@@@001"), 1);
    assert_eq!(chats(&again, "GID_student@@@002"), 1);
    assert_eq!(again.len(), 2, "{again:?}");
}
