//! The presence reducer against a naive reference model, over random histories: several
//! channels of one client, each with a connect and maybe a disconnect and/or a tcpclean,
//! duplicated and shuffled (any arrival order).
//!
//! The reference model is the seeds' rule read literally: sort the events seen so far by time
//! (connect before offline on a tie) and replay them into a set of open channels. After every
//! arrival the reducer must agree with it, and its transitions must be exactly the changes of
//! the reference's online flag. Whatever the order, the final state must be the same.

#![allow(clippy::expect_used)] // a test fixture that cannot be read is a failed test

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use mapping::{ClientId, ClientPresence, LifecycleEvent, LifecycleKind, OfflineReason, Transition};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};

const CASES: u32 = 10_000;

/// One channel's life: connect time, then optional disconnect and tcpclean delays and a reason.
type Life = (u64, Option<u64>, Option<u64>, u8, u8);

fn events_of(lives: &[Life]) -> Vec<LifecycleEvent> {
    let client = ClientId::parse("GID_student@@@002").expect("valid client ID");
    let mut out = Vec::new();
    for (i, &(connect, disconnect, tcpclean, reason, ip)) in lives.iter().enumerate() {
        let ev = |kind, time_ms, reason| LifecycleEvent {
            client_id: client.clone(),
            kind,
            time_ms,
            channel_id: format!("ch{i}"),
            client_ip: (kind == LifecycleKind::Connect).then(|| format!("192.0.2.{ip}")),
            reason,
        };
        out.push(ev(LifecycleKind::Connect, connect, None));
        if let Some(d) = disconnect {
            out.push(ev(
                LifecycleKind::Disconnect,
                connect + d,
                Some(OfflineReason::ClientInitiated),
            ));
        }
        if let Some(d) = tcpclean {
            let reason = match reason % 4 {
                0 => None,
                1 => Some(OfflineReason::ConnectionLost),
                2 => Some(OfflineReason::Takeover),
                _ => Some(OfflineReason::ClientInitiated),
            };
            out.push(ev(LifecycleKind::TcpClean, connect + d, reason));
        }
    }
    out
}

/// The reference: sort what has arrived by time and replay it naively.
fn reference_online(seen: &[LifecycleEvent]) -> bool {
    let mut sorted: Vec<&LifecycleEvent> = seen.iter().collect();
    sorted.sort_by_key(|e| (e.time_ms, e.kind != LifecycleKind::Connect));
    let mut open = BTreeSet::new();
    for e in sorted {
        if e.kind == LifecycleKind::Connect {
            open.insert(&e.channel_id);
        } else {
            open.remove(&e.channel_id);
        }
    }
    !open.is_empty()
}

fn histories() -> impl Strategy<Value = Vec<LifecycleEvent>> {
    // Few distinct times, so ties between channels and between events happen often.
    let life = (
        0u64..40,
        proptest::option::of(0u64..20),
        proptest::option::weighted(0.8, 0u64..20),
        any::<u8>(),
        0u8..3,
    );
    proptest::collection::vec(life, 1..6)
        .prop_flat_map(|lives| {
            let base = events_of(&lives);
            (Just(base), proptest::collection::vec(any::<Index>(), 0..8))
        })
        .prop_map(|(mut events, dups)| {
            let copies: Vec<LifecycleEvent> = dups.iter().map(|i| i.get(&events).clone()).collect();
            events.extend(copies);
            events
        })
        .prop_shuffle()
}

#[test]
fn the_reducer_agrees_with_the_reference_model_on_random_histories() {
    let cases = AtomicUsize::new(0);
    let arrivals = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config::with_cases(CASES));
    let result = runner.run(&histories(), |history| {
        cases.fetch_add(1, Ordering::Relaxed);
        let mut state = ClientPresence::default();
        for (n, event) in history.iter().enumerate() {
            arrivals.fetch_add(1, Ordering::Relaxed);
            let before = reference_online(&history[..n]);
            let after = reference_online(&history[..=n]);
            let applied = state.apply(event);
            prop_assert_eq!(
                state.is_online(),
                after,
                "after event {} of {:?}",
                n,
                history
            );
            prop_assert_eq!(applied.transition, Transition::between(before, after));
        }
        // Order independence: the same events sorted give the very same state.
        let mut sorted = history.clone();
        sorted.sort_by_key(|e| {
            (
                e.time_ms,
                e.kind,
                e.channel_id.clone(),
                e.reason.clone(),
                e.client_ip.clone(),
            )
        });
        prop_assert_eq!(&ClientPresence::from_events(&sorted), &state);
        let mut reversed = history.clone();
        reversed.reverse();
        prop_assert_eq!(&ClientPresence::from_events(&reversed), &state);
        Ok(())
    });
    let cases = cases.into_inner();
    let arrivals = arrivals.into_inner();
    if let Err(e) = result {
        panic!("{e} (after {cases} cases including shrinking)");
    }
    println!("presence reducer vs reference model: {cases} cases, {arrivals} arrivals, all agreed");
    assert!(cases >= CASES as usize, "only {cases} cases ran");
}
