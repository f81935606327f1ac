//! `make chaos`: the local stack's parts fail mid-stream, and nothing may be lost. On one fresh
//! stack, in turn:
//! 1. **runner killed** (`kill -9` mid-batch, back after 1 s) while 300 downlink notices flow;
//! 2. **rules bridge killed** (`kill -9` mid-stream, back after 1 s) while a student sends 60
//!    chats (5 a second, under the chat rate);
//! 3. **Mosquitto stopped** (`SIGSTOP` for 8 s, longer than `MQTT_PUBLISH_TIMEOUT_MS`, 5 s)
//!    while 300 notices flow;
//! 4. **moto stopped** (`SIGSTOP` for 30 s: SQS and DynamoDB unreachable) while 300 notices
//!    flow.
//!
//! For each it prints messages sent, delivered, duplicated (received more than once: at least
//! once allows it, clients drop them by `msgId`), lost, and the time from the part's return
//! to the last delivery. Then the side effects that must not double: a teacher's mute sent
//! while moto is stopped reaches the student's P2P topic as one mute (one `msgId`, however
//! often delivered; counted by a backend subscriber that reconnects), and the student,
//! connected once, has one attendance session. Bounded: each scenario waits at most 240 s for its messages (a record
//! the killed runner had received is invisible for the queue's visibility timeout, 210 s, as
//! after a Lambda crash mid-batch). Exit status 1 if anything was lost.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use e2e::{Observer, Peer, Stack, Tally, Transcript, repo_root};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(240);

struct Row {
    name: &'static str,
    sent: usize,
    tally: Tally,
    back: Instant,
}

impl Row {
    fn line(&self) -> String {
        let recovery = self.tally.last.map_or("-".to_owned(), |l| {
            format!(
                "{:.1} s",
                l.saturating_duration_since(self.back).as_secs_f64()
            )
        });
        format!(
            "{:<34} sent {:>4}  delivered {:>4}  duplicated {:>3}  lost {:>3}  last delivery {} after its return",
            self.name,
            self.sent,
            self.tally.delivered,
            self.tally.duplicates,
            self.sent.saturating_sub(self.tally.delivered),
            recovery
        )
    }
}

/// 300 notices at 100 a second; `fault` runs 1 s in and returns when the part is back.
async fn notices(
    stack: &Stack,
    observer: &Observer,
    name: &'static str,
    fault: impl FnOnce() -> Result<(), String>,
) -> Result<Row, String> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let ids: Vec<String> = (0..300).map(|i| format!("{name}-{run}-{i}")).collect();
    let sending = stack.spawn_notices(ids.clone(), 10).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(fault)?;
    let back = Instant::now();
    let refused = sending.await.map_err(|e| e.to_string())?;
    let wanted: HashSet<String> = ids.into_iter().collect();
    let tally = observer.wait_for(&wanted, WAIT).await;
    Ok(Row {
        name,
        sent: wanted.len() - refused,
        tally,
        back,
    })
}

fn pause(stack: &Stack, part: &str, secs: u64) -> Result<(), String> {
    stack.signal(part, "-STOP").map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(secs));
    stack.signal(part, "-CONT").map_err(|e| e.to_string())
}

const ROOM: &str = "chaos-1";
const STUDENT: &str = "GID_student@@@901";
const TEACHER: &str = "GID_teacher@@@901";

async fn chats(stack: &Stack, student: &Peer) -> Result<Row, String> {
    let room = ROOM;
    let observer = stack
        .observer(
            "chaos-chat-observer",
            &format!("room/message/{room}"),
            "msg",
        )
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let texts: Vec<String> = (0..60).map(|i| format!("chat {i} {run}")).collect();
    let mut back = Instant::now();
    for (i, t) in texts.iter().enumerate() {
        student.chat(room, t).await.map_err(|e| e.to_string())?;
        if i == 20 {
            tokio::task::block_in_place(|| {
                stack.restart("bridge", "-KILL", Duration::from_secs(1))
            })
            .map_err(|e| e.to_string())?;
            back = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let wanted: HashSet<String> = texts.into_iter().collect();
    let tally = observer.wait_for(&wanted, WAIT).await;
    Ok(Row {
        name: "rules bridge kill -9 mid-stream",
        sent: wanted.len(),
        tally,
        back,
    })
}

async fn run() -> Result<Vec<Row>, String> {
    let dir = repo_root().join(".run/chaos");
    println!("chaos: a local stack in {}", dir.display());
    let mut stack = Stack::start(&dir, &[("RUST_LOG_LOCAL", "warn")]).map_err(|e| e.to_string())?;
    let observer = stack
        .observer("chaos-observer", "room/system", "msgId")
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut rows = Vec::new();
    rows.push(
        notices(&stack, &observer, "runner kill -9 mid-batch", || {
            stack
                .restart("runner", "-KILL", Duration::from_secs(1))
                .map_err(|e| e.to_string())
        })
        .await?,
    );
    println!("{}", rows[0].line());
    let log = Transcript::new(false);
    let student = stack
        .peer("student", STUDENT, &[ROOM], false, &log)
        .await
        .map_err(|e| e.to_string())?;
    student
        .command(&json!({"type": "join", "roomId": ROOM}))
        .await
        .map_err(|e| e.to_string())?;
    // What reaches the student's P2P topic from now on (the joins are answered): only the mute.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p2p = stack
        .observer(
            "chaos-p2p-observer",
            &format!("room/p2p/{STUDENT}"),
            "msgId",
        )
        .await
        .map_err(|e| e.to_string())?;
    rows.push(chats(&stack, &student).await?);
    println!("{}", rows[1].line());
    rows.push(
        notices(&stack, &observer, "Mosquitto SIGSTOP 8 s", || {
            pause(&stack, "mosquitto", 8)
        })
        .await?,
    );
    println!("{}", rows[2].line());
    // The teacher signs in now (a client of the stopped Mosquitto lost its connection to the
    // keep-alive) and mutes the student 2 s into moto's stop: the bridge holds the command until
    // SQS is back, moderation then writes the mute once.
    let teacher = stack
        .peer("teacher", TEACHER, &[ROOM], false, &log)
        .await
        .map_err(|e| e.to_string())?;
    teacher
        .command(&json!({"type": "join", "roomId": ROOM}))
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mute = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        teacher
            .command(
                &json!({"type": "mute", "roomId": ROOM, "target": STUDENT, "durationSecs": 600}),
            )
            .await
            .map_err(|e| e.to_string())
    };
    let (row, muted) = tokio::join!(
        notices(
            &stack,
            &observer,
            "moto SIGSTOP 30 s (SQS, DynamoDB)",
            || { pause(&stack, "moto", 30) }
        ),
        mute
    );
    muted?;
    rows.push(row?);
    println!("{}", rows[3].line());
    // Side effects.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mutes = p2p.received();
    let distinct: HashSet<&String> = mutes.iter().collect();
    let ddb = stack.ddb().await;
    let sessions = ddb
        .query()
        .table_name(stack.var("ATTENDANCE_TABLE"))
        .key_condition_expression("clientId = :c")
        .expression_attribute_values(
            ":c",
            aws_sdk_dynamodb::types::AttributeValue::S(STUDENT.to_owned()),
        )
        .send()
        .await
        .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())?
        .count();
    println!(
        "side effects: the mute sent during moto's stop reached the student {} time(s) as {} mute(s); the student's attendance sessions: {sessions} (connected once)",
        mutes.len(),
        distinct.len()
    );
    stack.down();
    if distinct.len() != 1 || sessions != 1 {
        return Err(format!(
            "a side effect doubled or went missing: {} mute(s), {sessions} attendance session(s)",
            distinct.len()
        ));
    }
    Ok(rows)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(rows) => {
            println!("\nchaos summary");
            for r in &rows {
                println!("  {}", r.line());
            }
            if rows.iter().any(|r| r.tally.delivered < r.sent) {
                eprintln!("chaos: messages were lost");
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("chaos: {e}");
            ExitCode::FAILURE
        }
    }
}
