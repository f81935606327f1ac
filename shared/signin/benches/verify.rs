//! The cost of verifying a token, against a bare HMAC-SHA256 of the same bytes in the same run
//! (the floor: what any HMAC token must pay), and of the checks a broker makes per message.
//!
//! `cargo bench -p signin --bench verify`

#![allow(clippy::unwrap_used, missing_docs)] // a bench

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use mapping::{ClientId, RoomId};
use sha2::Sha256;
use signin::{Action, KeySet, LifetimeBounds, classroom_request, issue, verify, verify_password};

const NOW: u64 = 1_800_000_000;

fn bench(c: &mut Criterion) {
    let keys = KeySet::new("k1", vec![42u8; 32]).unwrap();
    let client = ClientId::parse("GID_student@@@001").unwrap();
    let room = RoomId::parse("1").unwrap();
    let req = classroom_request(&client, &[room], "roomSend", "room", 3600);
    let token = issue(
        &req,
        &keys,
        LifetimeBounds::CLOUD,
        NOW,
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap()
    .token;
    let signed = &token[..token.rfind('.').unwrap()];

    let mut g = c.benchmark_group("token");
    g.bench_function("bare_hmac_sha256_of_the_signed_bytes", |b| {
        b.iter(|| {
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&[42u8; 32]).unwrap();
            m.update(black_box(signed).as_bytes());
            black_box(m.finalize())
        })
    });
    g.bench_function("verify_classroom_token", |b| {
        b.iter(|| verify(black_box(&token), "GID_student@@@001", &keys, NOW).unwrap())
    });
    g.bench_function("verify_password_classroom_token", |b| {
        b.iter(|| verify_password(black_box(&token), "GID_student@@@001", &keys, NOW).unwrap())
    });

    // A grant at the limit: 100 filters.
    let mut wide = req.clone();
    wide.read = (0..98).map(|i| format!("room/message/{i}")).collect();
    let wide_token = issue(&wide, &keys, LifetimeBounds::CLOUD, NOW, "wide")
        .unwrap()
        .token;
    g.bench_function("verify_password_100_filters", |b| {
        b.iter(|| verify_password(black_box(&wide_token), "GID_student@@@001", &keys, NOW).unwrap())
    });
    g.finish();

    let grant = verify_password(&token, "GID_student@@@001", &keys, NOW).unwrap();
    let wide_grant = verify_password(&wide_token, "GID_student@@@001", &keys, NOW).unwrap();
    let mut g = c.benchmark_group("acl");
    g.bench_function("bare_string_compare", |b| {
        b.iter(|| black_box("room/message/1") == black_box("room/message/1"))
    });
    g.bench_function("receive_classroom_grant", |b| {
        b.iter(|| {
            grant
                .allows(Action::Receive, black_box("room/message/1"))
                .is_ok()
        })
    });
    g.bench_function("receive_refused_100_filters", |b| {
        b.iter(|| {
            wide_grant
                .allows(Action::Receive, black_box("room/message/x"))
                .is_err()
        })
    });
    g.bench_function("subscribe_classroom_grant", |b| {
        b.iter(|| {
            grant
                .allows(Action::Subscribe, black_box("room/message/1"))
                .is_ok()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
