//! The cost of the plugin's ACL check per delivery (`MOSQ_ACL_READ`, asked by Mosquitto 2.0.11
//! for every message to every matching subscriber): the connection lookup in the session table
//! and `Grant::allows`, for a classroom-size table and grant, against a bare string comparison
//! (the floor of any check) in the same run. `callback` adds what the FFI callback adds around
//! the pure check: the state lock and the clock.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use classroom_broker_plugin::auth::{AclVerdict, Who};
use classroom_broker_plugin::records::Session;
use classroom_broker_plugin::sessions::Sessions;
use criterion::{Criterion, criterion_group, criterion_main};
use signin::{Action, KeySet, LifetimeBounds, TokenRequest};

const READ: i32 = 1;
/// Connections in the table: a class of 40 plus a teacher.
const CLASS: usize = 41;

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The classroom scopes of §8 for `rooms` rooms.
fn request(client: &str, rooms: usize) -> TokenRequest {
    let mut read: Vec<String> = (1..=rooms)
        .flat_map(|r| [format!("room/message/{r}"), format!("room/status/{r}")])
        .collect();
    read.push("room/system".into());
    read.push(format!("room/p2p/{client}"));
    TokenRequest {
        client_id: client.into(),
        read,
        write: vec!["roomSend/message".into(), "roomSend/command".into()],
        lifetime_secs: 3600,
    }
}

fn table(rooms: usize) -> Sessions {
    let keys = KeySet::new("k1", vec![7; 32]).unwrap();
    let now = now_s();
    let mut sessions = Sessions::default();
    for i in 0..CLASS {
        let client = format!("GID_student@@@{i:03}");
        let issued = signin::issue(
            &request(&client, rooms),
            &keys,
            LifetimeBounds::CLOUD,
            now,
            &format!("t-{i}"),
        )
        .unwrap();
        let grant = signin::verify_password(&issued.token, &client, &keys, now).unwrap();
        let session = Session {
            client_id: client.clone(),
            session_id: format!("s-{i}"),
            ip_address: Some("127.0.0.1".into()),
            username: Some(client),
        };
        // Connection keys look like heap addresses.
        sessions.connect(0x5555_0000_0000 + i * 0x1000, session, grant);
    }
    sessions
}

fn bench(c: &mut Criterion) {
    let conn = 0x5555_0000_0000 + 17 * 0x1000;
    let now = now_s();
    let mut g = c.benchmark_group("acl_read_per_delivery");

    g.bench_function("baseline_string_eq", |b| {
        b.iter(|| black_box(black_box("room/message/1") == black_box("room/message/1")))
    });

    // One room: 4 read filters, the delivered topic matched by the first.
    let one = table(1);
    assert_eq!(
        one.check(conn, READ, "room/message/1", now),
        AclVerdict::Allow
    );
    g.bench_function("check_1_room_first_filter", |b| {
        b.iter(|| one.check(black_box(conn), READ, black_box("room/message/1"), now))
    });
    // The two halves: the table lookup alone, and `Grant::allows` alone (the signin crate).
    g.bench_function("lookup_only", |b| {
        b.iter(|| matches!(one.who(black_box(conn)), Who::Classroom { .. }))
    });
    let Who::Classroom { grant, .. } = one.who(conn) else {
        panic!("connection not found")
    };
    g.bench_function("grant_allows_only_1_room_first_filter", |b| {
        b.iter(|| grant.allows(Action::Receive, black_box("room/message/1")))
    });

    // Filters are sorted: `room/system` is matched by the last one.
    let last = "room/system";
    assert_eq!(one.check(conn, READ, last, now), AclVerdict::Allow);
    g.bench_function("check_1_room_last_filter", |b| {
        b.iter(|| one.check(black_box(conn), READ, black_box(last), now))
    });

    // The largest classroom token: 48 rooms, 98 read filters; a topic matched by the last.
    let many = table(48);
    assert_eq!(many.check(conn, READ, last, now), AclVerdict::Allow);
    g.bench_function("check_48_rooms_last_filter", |b| {
        b.iter(|| many.check(black_box(conn), READ, black_box(last), now))
    });

    // What the callback adds: the lock and the clock.
    let locked = Mutex::new(table(1));
    g.bench_function("callback_1_room_lock_clock_check", |b| {
        b.iter(|| {
            let st = locked.lock().unwrap();
            st.check(black_box(conn), READ, black_box("room/message/1"), now_s())
        })
    });

    // A denied delivery (allocates the error's topic).
    g.bench_function("check_1_room_denied", |b| {
        b.iter(|| one.check(black_box(conn), READ, black_box("room/message/2"), now))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
