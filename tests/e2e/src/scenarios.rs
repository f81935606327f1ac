//! The seeds' classroom, scenario by scenario, over a running stack: used by the `demo` binary
//! and by the end-to-end test. Each scenario returns a pass/fail with a one-line reason.
//!
//! Everyone signs in with a classroom token from the local issuer for the rooms the school
//! directory lists for them (§8): the teacher, A and B attend room 1; the outsider
//! (`GID_student@@@006`) attends room 2 only, and the last scenario shows that room 1 is closed
//! to it.

use std::time::Duration;

use serde_json::json;

use crate::{Error, Msg, Stack, SubscribeReasonCode, Transcript, members, members_at_least};

/// The seeds' client IDs.
pub const TEACHER: &str = "GID_teacher@@@001";
/// Student A.
pub const STUDENT_A: &str = "GID_student@@@001";
/// Student B.
pub const STUDENT_B: &str = "GID_student@@@002";
/// A student the directory enrolls in room 2 only.
pub const OUTSIDER: &str = "GID_student@@@006";
/// The room.
pub const ROOM: &str = "1";

const WAIT: Duration = Duration::from_secs(10);

/// One scenario's outcome.
#[derive(Debug, Clone)]
pub struct ScenarioOutcome {
    /// What was checked.
    pub name: &'static str,
    /// Whether it held.
    pub passed: bool,
    /// Why (what was missing, or what was seen).
    pub detail: String,
}

fn outcome(name: &'static str, problems: Vec<String>, ok: &str) -> ScenarioOutcome {
    if problems.is_empty() {
        ScenarioOutcome {
            name,
            passed: true,
            detail: ok.to_owned(),
        }
    } else {
        ScenarioOutcome {
            name,
            passed: false,
            detail: problems.join("; "),
        }
    }
}

fn chat_from<'a>(from: &'a str, pred: impl Fn(&str) -> bool + 'a) -> impl Fn(&Msg) -> bool + 'a {
    move |m: &Msg| {
        m.topic == format!("room/message/{ROOM}") && m.field("peer") == from && pred(m.field("msg"))
    }
}

/// Plays the whole classroom on `stack`; returns one outcome per scenario.
pub async fn classroom(stack: &Stack, log: &Transcript) -> Result<Vec<ScenarioOutcome>, Error> {
    let sqs = stack.sqs().await;
    let ddb = stack.ddb().await;
    let mut t = stack.peer("teacher", TEACHER, &[], true, log).await?;
    let mut a = stack.peer("A", STUDENT_A, &[], true, log).await?;
    let mut b = stack.peer("B", STUDENT_B, &[], true, log).await?;
    for p in [&mut t, &mut a, &mut b] {
        p.subscribe_classroom(ROOM).await?;
    }
    let mut out = Vec::new();

    // 1. Everyone joins room 1.
    for p in [&t, &a, &b] {
        p.command(&json!({"type": "join", "roomId": ROOM})).await?;
    }
    let joined = members_at_least(stack, &ddb, ROOM, 3, WAIT).await;
    out.push(outcome(
        "all three join room 1",
        if joined {
            vec![]
        } else {
            vec!["the membership table never listed 3 members of room 1".into()]
        },
        "membership table lists teacher, A and B",
    ));

    // 2. A chats; all three receive it, with A as the broker-verified peer.
    a.chat(ROOM, "hello everyone").await?;
    let mut problems = Vec::new();
    for p in [&mut t, &mut a, &mut b] {
        if p.expect(WAIT, chat_from(STUDENT_A, |m| m == "hello everyone"))
            .await
            .is_none()
        {
            problems.push(format!("{} did not receive A's chat", p.name));
        }
    }
    out.push(outcome(
        "A chats and all three receive it",
        problems,
        "teacher, A and B received it from peer A",
    ));

    // 3. A banned word is masked.
    a.chat(ROOM, "you are stupid").await?;
    let mut problems = Vec::new();
    for p in [&mut t, &mut b] {
        match p
            .expect(WAIT, chat_from(STUDENT_A, |m| m.starts_with("you are")))
            .await
        {
            Some(m) if m.field("msg").contains("stupid") => {
                problems.push(format!(
                    "{} received it unmasked: {}",
                    p.name,
                    m.field("msg")
                ));
            }
            Some(_) => {}
            None => problems.push(format!("{} did not receive the masked message", p.name)),
        }
    }
    out.push(outcome(
        "a banned word is masked",
        problems,
        "teacher and B received \"you are\" with the word masked",
    ));

    // 4. The teacher mutes B; B receives the P2P notice.
    t.command(&json!({"type": "mute", "roomId": ROOM, "target": STUDENT_B}))
        .await?;
    let p2p = format!("room/p2p/{STUDENT_B}");
    let notice = b
        .expect(WAIT, |m| m.topic == p2p && m.field("type") == "mute")
        .await;
    let leaked_a = a
        .quiet(Duration::from_millis(300), |m| m.topic == p2p)
        .await;
    let mut problems = Vec::new();
    if notice.is_none() {
        problems.push("B received no mute notice on its P2P topic".into());
    }
    if leaked_a.is_some() {
        problems.push("A received B's P2P notice".into());
    }
    out.push(outcome(
        "the teacher mutes B and B receives the P2P notice",
        problems,
        "B got {type: mute} on room/p2p/B",
    ));

    // 5. B's next message reaches no one (and the room still works: A's next one does).
    b.chat(ROOM, "am I muted?").await?;
    let mut problems = Vec::new();
    // One 3 s window for the teacher; A and B would have received it by then too.
    for (p, window) in [(&mut t, 3000), (&mut a, 200), (&mut b, 200)] {
        if let Some(m) = p
            .quiet(
                Duration::from_millis(window),
                chat_from(STUDENT_B, |m| m.contains("muted")),
            )
            .await
        {
            problems.push(format!("{} received B's muted message: {}", p.name, m.raw));
        }
    }
    a.chat(ROOM, "still here").await?;
    if t.expect(WAIT, chat_from(STUDENT_A, |m| m == "still here"))
        .await
        .is_none()
    {
        problems.push("the control message from A after the mute did not reach the teacher".into());
    }
    out.push(outcome(
        "B's next message reaches no one",
        problems,
        "nobody received it; A's next message still went through",
    ));

    // 6. B's connection is killed; the others receive B's offline notice.
    b.kill();
    let status = format!("room/status/{ROOM}");
    let mut problems = Vec::new();
    for p in [&mut t, &mut a] {
        let offline = p
            .expect(WAIT, |m| {
                m.topic == status
                    && m.field("type") == "offline"
                    && m.field("clientId") == STUDENT_B
            })
            .await;
        if offline.is_none() {
            problems.push(format!("{} received no offline notice for B", p.name));
        }
    }
    out.push(outcome(
        "B's connection is killed and the others see B go offline",
        problems,
        "teacher and A got {type: offline, clientId: B}",
    ));

    // 7. A system notice reaches all: live for the teacher and A, and for B (cleanSession=false)
    //    from its session when it comes back.
    let text = format!(
        "class ends in 5 minutes ({})",
        uuid::Uuid::new_v4().simple()
    );
    log.note("admin", &format!("sends the system notice {text:?}"));
    let via = stack.notify(&sqs, &text).await?;
    log.note("admin", &format!("-> sent with {via}"));
    let mut problems = Vec::new();
    let is_notice = |m: &Msg| m.topic == "room/system" && m.raw.contains(&text);
    for p in [&mut t, &mut a] {
        if p.expect(WAIT, is_notice).await.is_none() {
            problems.push(format!("{} did not receive the system notice", p.name));
        }
    }
    let mut b = stack.peer("B", STUDENT_B, &[], true, log).await?;
    if b.expect(WAIT, is_notice).await.is_none() {
        problems.push("B did not receive the notice on reconnecting with its session".into());
    }
    out.push(outcome(
        "a system notice reaches all",
        problems,
        "teacher and A live, B from its persistent session",
    ));

    // 8. A student whose token is for room 2 only cannot read, join or chat in room 1.
    out.push(outsider(stack, log, &mut t, &mut a).await?);

    for p in [t, a, b] {
        p.leave().await;
    }
    Ok(out)
}

/// Scenario 8: the outsider's SUBACK for room 1's chat is refused, its join and its chat there
/// are rejected with `not_enrolled` on its P2P topic, and neither reaches the room.
async fn outsider(
    stack: &Stack,
    log: &Transcript,
    t: &mut crate::Peer,
    a: &mut crate::Peer,
) -> Result<ScenarioOutcome, Error> {
    let ddb = stack.ddb().await;
    let mut c = stack.peer("outsider", OUTSIDER, &[], false, log).await?;
    let p2p = format!("room/p2p/{OUTSIDER}");
    let room_chat = format!("room/message/{ROOM}");
    let codes = c.subscribe(&[&room_chat, &p2p]).await?;
    let mut problems = Vec::new();
    if !matches!(
        codes.as_slice(),
        [
            SubscribeReasonCode::Failure,
            SubscribeReasonCode::Success(_)
        ]
    ) {
        problems.push(format!(
            "SUBACK for {room_chat} and its own P2P topic: {codes:?}, want refused and granted"
        ));
    }
    let rejected = |m: &Msg| {
        m.topic == p2p && m.field("type") == "rejected" && m.field("reason") == "not_enrolled"
    };
    c.command(&json!({"type": "join", "roomId": ROOM})).await?;
    if c.expect(WAIT, rejected).await.is_none() {
        problems.push("its join got no rejected/not_enrolled notice".into());
    }
    let text = format!("let me in ({})", uuid::Uuid::new_v4().simple());
    c.chat(ROOM, &text).await?;
    if c.expect(WAIT, rejected).await.is_none() {
        problems.push("its chat got no rejected/not_enrolled notice".into());
    }
    for (p, window) in [(&mut *t, 2000), (&mut *a, 200)] {
        if let Some(m) = p
            .quiet(Duration::from_millis(window), |m: &Msg| {
                m.raw.contains(&text)
            })
            .await
        {
            problems.push(format!(
                "{} received the outsider's chat: {}",
                p.name, m.raw
            ));
        }
    }
    if members(stack, &ddb, ROOM)
        .await
        .iter()
        .any(|m| m == OUTSIDER)
    {
        problems.push("the membership table lists the outsider in room 1".into());
    }
    c.leave().await;
    Ok(outcome(
        "a student not enrolled in room 1 is refused",
        problems,
        "SUBACK refused room 1, join and chat rejected not_enrolled, nobody saw the chat",
    ))
}
