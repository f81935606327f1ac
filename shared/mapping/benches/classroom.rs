//! Benchmarks of the classroom's pure hot paths: the moderation verdict on a 200-byte message
//! with a 10,000-word list, building that automaton, and one presence reduction. Figures are
//! printed by criterion, never asserted (targets: verdict <= 2 us and at most 2x the verdict
//! before issue 14's normalisation, build <= 20 ms). `baseline` is that earlier verdict (case
//! and full-width folding only), benched on the same list and messages in the same run: each
//! `moderation/...` figure has its `baseline/...` twin.

#![allow(clippy::expect_used)] // a test fixture that cannot be read is a failed test

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mapping::{ClientId, ClientPresence, LifecycleEvent, LifecycleKind, Mode, Policy};

mod baseline;

/// A small deterministic generator, so every run benches the same list.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 10,000 banned words: half English (4 to 10 letters), half Chinese (2 to 4 CJK characters).
fn word_list() -> Vec<String> {
    let mut rng = Lcg(42);
    (0..10_000)
        .map(|i| {
            if i % 2 == 0 {
                let len = 4 + rng.below(7);
                (0..len)
                    .map(|_| char::from(b'a' + rng.below(26) as u8))
                    .collect()
            } else {
                let len = 2 + rng.below(3);
                (0..len)
                    .map(|_| char::from_u32(0x4E00 + rng.below(0x5000) as u32).unwrap_or('中'))
                    .collect()
            }
        })
        .collect()
}

/// A chat message of about 200 bytes, mixed Chinese and English, full-width and mixed case.
fn message(with: &[String]) -> String {
    let mut text =
        String::from("Good morning 老师, ＨＥＬＬＯ everyone! 今天我们学习第三章，请打开课本。 ");
    for w in with {
        text.push_str(w);
        text.push(' ');
    }
    while text.len() < 200 {
        text.push_str("ok 好的 ");
    }
    text
}

fn moderation(c: &mut Criterion) {
    let words = word_list();
    c.bench_function("moderation/build 10k words", |b| {
        b.iter(|| Policy::new(black_box(&words), Mode::Mask, 500))
    });
    let mask = Policy::new(&words, Mode::Mask, 500).unwrap_or_else(|e| panic!("{e}"));
    let reject = Policy::new(&words, Mode::Reject, 500).unwrap_or_else(|e| panic!("{e}"));
    let clean = message(&[]);
    let dirty = message(&[words[0].to_uppercase(), words[1].clone()]);
    println!(
        "message sizes: clean {} bytes, with banned words {} bytes",
        clean.len(),
        dirty.len()
    );
    c.bench_function("moderation/verdict 200B clean (mask)", |b| {
        b.iter(|| mask.verdict(black_box(&clean)))
    });
    c.bench_function("moderation/verdict 200B with 2 hits (mask)", |b| {
        b.iter(|| mask.verdict(black_box(&dirty)))
    });
    c.bench_function("moderation/verdict 200B with 2 hits (reject)", |b| {
        b.iter(|| reject.verdict(black_box(&dirty)))
    });

    // The same, with the verdict as it was before the normalisation (the baseline).
    c.bench_function("baseline/build 10k words", |b| {
        b.iter(|| baseline::Policy::new(black_box(&words), baseline::Mode::Mask, 500))
    });
    let old_mask =
        baseline::Policy::new(&words, baseline::Mode::Mask, 500).unwrap_or_else(|e| panic!("{e}"));
    let old_reject = baseline::Policy::new(&words, baseline::Mode::Reject, 500)
        .unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("baseline/verdict 200B clean (mask)", |b| {
        b.iter(|| old_mask.verdict(black_box(&clean)))
    });
    c.bench_function("baseline/verdict 200B with 2 hits (mask)", |b| {
        b.iter(|| old_mask.verdict(black_box(&dirty)))
    });
    c.bench_function("baseline/verdict 200B with 2 hits (reject)", |b| {
        b.iter(|| old_reject.verdict(black_box(&dirty)))
    });
}

fn presence(c: &mut Criterion) {
    let client = ClientId::parse("GID_student@@@002").unwrap_or_else(|e| panic!("{e}"));
    let ev = |kind, time_ms, channel: &str| LifecycleEvent {
        client_id: client.clone(),
        kind,
        time_ms,
        channel_id: channel.to_owned(),
        client_ip: Some("203.0.113.7:52100".to_owned()),
        reason: None,
    };
    // A client with a few past (closed) channels and one open one: the usual state.
    let mut base = ClientPresence::default();
    for i in 0..4u64 {
        let ch = format!("2b9b1281046046faafe5e0b458e4c{i:03}");
        base.apply(&ev(LifecycleKind::Connect, i * 100, &ch));
        base.apply(&ev(LifecycleKind::TcpClean, i * 100 + 50, &ch));
    }
    let connect = ev(
        LifecycleKind::Connect,
        1_000,
        "2b9b1281046046faafe5e0b458e4c999",
    );
    c.bench_function("presence/apply one event", |b| {
        b.iter_batched(
            || base.clone(),
            |mut state| state.apply(black_box(&connect)),
            criterion::BatchSize::SmallInput,
        )
    });
    let mut parse_body = String::new();
    parse_body.push_str(r#"{"clientId":"GID_student@@@002","time":1732240000000,"eventType":"connect","channelId":"2b9b1281046046faafe5e0b458e4c001","clientIp":"203.0.113.7:52100"}"#);
    c.bench_function("presence/parse one seeds event", |b| {
        b.iter(|| LifecycleEvent::from_json(black_box(&parse_body), Some("connect")))
    });
}

criterion_group!(benches, moderation, presence);
criterion_main!(benches);
