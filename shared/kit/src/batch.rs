//! Records and their outcomes: [`RecordError`] says whether a retry can help, [`Fanout`]
//! maps each record to the items it sends, sends the good ones in groups and puts each
//! result back on its record.
//!
//! With the `lambda` feature, the SQS batch driver too: a batch in, an `SqsBatchResponse`
//! out listing exactly the records that failed ("every record has an outcome"). A record
//! without a message ID fails the whole invocation: reporting an empty `itemIdentifier`
//! would make Lambda retry the whole batch anyway, and silently dropping it would lose it.
//! Every record gets its own tracing span carrying its message ID, and every failure is
//! logged once, as one structured line, inside that span.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::future::Future;

use mapping::MappingError;

#[cfg(feature = "lambda")]
mod driver;
#[cfg(feature = "lambda")]
pub use driver::{BatchError, Record, Settler, each_record, process_batch, record_of};

/// A boxed error source.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why one record failed. The variant says whether retrying can help; either way the record
/// is reported failed, so the queue redelivers it and, after `maxReceiveCount` receives, moves
/// it to the dead-letter queue. Nothing is dropped silently.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The record itself is bad; a retry cannot fix it.
    #[error("{source}")]
    Permanent {
        /// Short stable name for logs (`error.kind`).
        kind: &'static str,
        /// The cause.
        source: BoxError,
    },
    /// A dependency failed (queue throttled, broker down); a retry may succeed.
    #[error("{source}")]
    Transient {
        /// Short stable name for logs (`error.kind`).
        kind: &'static str,
        /// The cause.
        source: BoxError,
    },
}

impl RecordError {
    /// A permanent failure.
    pub fn permanent(kind: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Permanent {
            kind,
            source: source.into(),
        }
    }

    /// A transient failure.
    pub fn transient(kind: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Transient {
            kind,
            source: source.into(),
        }
    }

    /// The error's short name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Permanent { kind, .. } | Self::Transient { kind, .. } => kind,
        }
    }

    /// Whether a retry may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

impl From<MappingError> for RecordError {
    fn from(e: MappingError) -> Self {
        let kind = e.kind();
        if e.retryable() {
            Self::transient(kind, e)
        } else {
            Self::permanent(kind, e)
        }
    }
}

/// The outcome of one record.
pub type Outcome = Result<(), RecordError>;

/// One batch's fan-out: map each record to the items it sends (zero or more), send the good
/// items together, and put each send result back on the record it came from.
///
/// ```
/// # use kit::{Fanout, RecordError};
/// let mut fanout = Fanout::new(3);
/// fanout.push(Ok(vec!["a1", "a2"])); // record 0 sends two items
/// fanout.push(Err(RecordError::permanent("bad", "record 1 is bad"))); // sends nothing
/// fanout.push(Ok(vec![])); // record 2 sends nothing and succeeds
/// assert_eq!(fanout.items().copied().collect::<Vec<_>>(), ["a1", "a2"]);
/// // The sender's results, one per item, in `items()` order (`send_with` does this in one go).
/// let results = [Ok(()), Err(RecordError::transient("down", "a2 not sent"))];
/// let outcomes = fanout.settle(results);
/// assert_eq!(outcomes.iter().map(Result::is_ok).collect::<Vec<_>>(), [false, false, true]);
/// ```
///
/// Every record has exactly one outcome, in record order: a record that failed while being
/// mapped keeps its own error; a record whose items were sent fails with the first error of
/// its items; a send that returns fewer results than items fails the records left without a
/// result (a bug can cause a retry, never a loss).
#[derive(Debug)]
pub struct Fanout<T> {
    /// One outcome per record pushed so far, in order.
    outcomes: Vec<Outcome>,
    /// The items to send, each with the index of its record.
    pending: Vec<(usize, T)>,
}

impl<T> Default for Fanout<T> {
    fn default() -> Self {
        Self::new(0)
    }
}

impl<T> Fanout<T> {
    /// An empty fan-out with room for `records` records.
    pub fn new(records: usize) -> Self {
        Self {
            outcomes: Vec::with_capacity(records),
            pending: Vec::with_capacity(records),
        }
    }

    /// Record the outcome of the next record (in order): `Ok(items to send)` or its error.
    pub fn push(&mut self, outcome: Result<Vec<T>, RecordError>) {
        let index = self.outcomes.len();
        match outcome {
            Ok(items) => {
                self.pending
                    .extend(items.into_iter().map(|item| (index, item)));
                self.outcomes.push(Ok(()));
            }
            Err(e) => self.outcomes.push(Err(e)),
        }
    }

    /// Records pushed so far.
    pub fn records(&self) -> usize {
        self.outcomes.len()
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The items to send, in order.
    pub fn items(&self) -> impl ExactSizeIterator<Item = &T> {
        self.pending.iter().map(|(_, item)| item)
    }

    /// The items to send, in order, each with the index of the record it came from (for
    /// logging a success inside its record's span).
    pub fn indexed(&self) -> impl ExactSizeIterator<Item = (usize, &T)> {
        self.pending.iter().map(|(index, item)| (*index, item))
    }

    /// Put each send result back on its record: a record fails with the first error of its
    /// items (unless it had already failed). `results` is in [`items()`](Self::items) order;
    /// items left without a result fail their record, extra results are ignored.
    pub fn settle<E: Into<RecordError>>(
        self,
        results: impl IntoIterator<Item = Result<(), E>>,
    ) -> Vec<Outcome> {
        let Self {
            mut outcomes,
            pending,
        } = self;
        let mut results = results.into_iter();
        for (index, _) in pending {
            let error = match results.next() {
                Some(Ok(())) => continue,
                Some(Err(e)) => e.into(),
                None => missing_result(),
            };
            if let Some(outcome @ Ok(())) = outcomes.get_mut(index) {
                *outcome = Err(error);
            }
        }
        outcomes
    }

    /// Shortcut: send all items with `send` (one call for the whole batch, skipped when there
    /// is nothing to send) and settle.
    ///
    /// `send` is an async closure (`async |items| sender.send_all(url, &items).await`), so
    /// the future it returns may borrow the items; it returns one result per item, in order.
    pub async fn send_with<F, E>(self, send: F) -> Vec<Outcome>
    where
        F: AsyncFnOnce(Vec<&T>) -> Vec<Result<(), E>>,
        E: Into<RecordError>,
    {
        if self.pending.is_empty() {
            return self.outcomes;
        }
        let results = send(self.items().collect()).await;
        self.settle(results)
    }

    /// Send the items in groups: `key` names each item's group (e.g. its queue), `send` is
    /// called once per group, in key order, with the group's items (owned) in order; then
    /// settle. `send` is a plain closure returning a future
    /// (`|queue, items| { let m = ...; async move { sender.send_all(queue, &m).await } }`):
    /// its future owns the items, so the whole handler future stays `Send` for any lifetime
    /// (an `AsyncFn` bound here makes spawned handlers fail with "not general enough").
    pub async fn send_grouped<K, G, F, Fut, E>(self, key: G, mut send: F) -> Vec<Outcome>
    where
        K: Ord,
        G: Fn(&T) -> K,
        F: FnMut(K, Vec<T>) -> Fut,
        Fut: Future<Output = Vec<Result<(), E>>>,
        E: Into<RecordError>,
    {
        let Self { outcomes, pending } = self;
        let total = pending.len();
        let mut groups: BTreeMap<K, Vec<(usize, T)>> = BTreeMap::new();
        let mut indices = Vec::with_capacity(total);
        for (position, (index, item)) in pending.into_iter().enumerate() {
            indices.push(index);
            groups.entry(key(&item)).or_default().push((position, item));
        }
        let mut results: Vec<Option<Outcome>> =
            std::iter::repeat_with(|| None).take(total).collect();
        for (k, members) in groups {
            let (positions, items): (Vec<usize>, Vec<T>) = members.into_iter().unzip();
            let mut sent = send(k, items).await.into_iter();
            for p in positions {
                results[p] = sent.next().map(|r| r.map_err(Into::into));
            }
        }
        // An item its group's sender returned no result for fails its record.
        let settled = Fanout {
            outcomes,
            pending: indices.into_iter().map(|i| (i, ())).collect(),
        };
        settled.settle(
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Err(missing_result()))),
        )
    }
}

/// The error of an item the sender returned no result for.
fn missing_result() -> RecordError {
    RecordError::permanent(
        "no_send_result",
        "the sender returned fewer results than items; this item's fate is unknown",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error for item `n`, with its number in the message.
    fn item_error(n: u32) -> RecordError {
        RecordError::transient("send", format!("item {n} not sent"))
    }

    /// The outcomes as `None` (ok) or `Some(message)`.
    fn messages(outcomes: &[Outcome]) -> Vec<Option<String>> {
        outcomes
            .iter()
            .map(|o| o.as_ref().err().map(ToString::to_string))
            .collect()
    }

    #[test]
    fn records_with_zero_one_and_many_items_each_get_one_outcome() {
        let mut fanout = Fanout::new(3);
        fanout.push(Ok(vec![]));
        fanout.push(Ok(vec![10]));
        fanout.push(Ok(vec![20, 21, 22]));
        assert_eq!(fanout.records(), 3);
        assert_eq!(
            fanout.items().copied().collect::<Vec<u32>>(),
            [10, 20, 21, 22]
        );
        assert_eq!(fanout.items().len(), 4);
        assert_eq!(
            fanout.indexed().map(|(i, n)| (i, *n)).collect::<Vec<_>>(),
            [(1, 10), (2, 20), (2, 21), (2, 22)]
        );
        let outcomes = fanout.settle([Ok::<(), RecordError>(()), Ok(()), Ok(()), Ok(())]);
        assert_eq!(messages(&outcomes), [None, None, None]);
    }

    #[test]
    fn a_record_fails_with_the_first_error_of_its_items_and_alone() {
        let mut fanout = Fanout::new(3);
        fanout.push(Ok(vec![10]));
        fanout.push(Ok(vec![20, 21, 22]));
        fanout.push(Ok(vec![30]));
        let outcomes = fanout.settle([
            Ok(()),
            Ok(()),
            Err(item_error(21)),
            Err(item_error(22)),
            Ok(()),
        ]);
        assert_eq!(
            messages(&outcomes),
            [None, Some("item 21 not sent".to_owned()), None]
        );
        assert!(outcomes[1].as_ref().is_err_and(RecordError::retryable));
    }

    #[test]
    fn a_failed_record_keeps_its_own_error_and_sends_nothing() {
        let mut fanout = Fanout::new(3);
        fanout.push(Ok(vec![10]));
        fanout.push(Err(RecordError::permanent("bad_record", "record 1 is bad")));
        fanout.push(Ok(vec![30]));
        assert_eq!(fanout.items().copied().collect::<Vec<u32>>(), [10, 30]);
        let outcomes = fanout.settle([Ok(()), Err(item_error(30))]);
        assert_eq!(
            messages(&outcomes),
            [
                None,
                Some("record 1 is bad".to_owned()),
                Some("item 30 not sent".to_owned())
            ]
        );
        assert_eq!(
            outcomes[1].as_ref().err().map(RecordError::kind),
            Some("bad_record")
        );
    }

    #[test]
    fn results_shorter_than_items_fail_the_records_left_without_one() {
        let mut fanout = Fanout::new(3);
        fanout.push(Ok(vec![10]));
        fanout.push(Ok(vec![20, 21]));
        fanout.push(Ok(vec![30]));
        let outcomes = fanout.settle([Ok::<(), RecordError>(()), Ok(())]);
        assert!(outcomes[0].is_ok());
        for outcome in &outcomes[1..] {
            let e = outcome.as_ref().unwrap_err();
            assert_eq!(e.kind(), "no_send_result");
            assert!(e.to_string().contains("fewer results than items"), "{e}");
        }
    }

    #[test]
    fn extra_results_are_ignored() {
        let mut fanout = Fanout::new(1);
        fanout.push(Ok(vec![10]));
        let outcomes = fanout.settle([Ok(()), Err(item_error(99))]);
        assert_eq!(messages(&outcomes), [None]);
    }

    #[tokio::test]
    async fn send_with_sends_every_item_once_in_order() {
        let mut fanout = Fanout::new(3);
        fanout.push(Ok(vec![10, 11]));
        fanout.push(Err(RecordError::permanent("bad_record", "record 1 is bad")));
        fanout.push(Ok(vec![30]));
        let sent = std::sync::Mutex::new(Vec::new());
        let log = &sent;
        // An async closure: its future borrows the items across the await.
        let outcomes = fanout
            .send_with(async |items| {
                tokio::task::yield_now().await;
                log.lock()
                    .map(|mut s| s.extend(items.iter().map(|n| **n)))
                    .ok();
                items
                    .iter()
                    .map(|n| {
                        if **n == 11 {
                            Err(item_error(11))
                        } else {
                            Ok(())
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await;
        assert_eq!(sent.into_inner().ok(), Some(vec![10, 11, 30]));
        assert_eq!(
            messages(&outcomes),
            [
                Some("item 11 not sent".to_owned()),
                Some("record 1 is bad".to_owned()),
                None
            ]
        );
    }

    #[tokio::test]
    async fn send_with_skips_the_call_when_nothing_is_to_send() {
        let mut fanout = Fanout::<u32>::new(2);
        fanout.push(Ok(vec![]));
        fanout.push(Err(RecordError::permanent("bad_record", "bad")));
        let outcomes = fanout
            .send_with(async |_: Vec<&u32>| -> Vec<Result<(), RecordError>> {
                panic!("nothing to send, yet send was called")
            })
            .await;
        assert_eq!(messages(&outcomes), [None, Some("bad".to_owned())]);
    }

    #[tokio::test]
    async fn send_grouped_sends_each_group_once_and_maps_results_back() {
        let mut fanout = Fanout::new(3);
        fanout.push(Ok(vec![("q2", 10), ("q1", 11)]));
        fanout.push(Ok(vec![("q1", 20)]));
        fanout.push(Ok(vec![("q2", 30), ("q3", 31)]));
        let calls = std::sync::Mutex::new(Vec::new());
        let outcomes = fanout
            .send_grouped(
                |(queue, _)| *queue,
                |queue, items: Vec<(&str, u32)>| {
                    let ns: Vec<u32> = items.iter().map(|(_, n)| *n).collect();
                    calls.lock().map(|mut c| c.push((queue, ns.clone()))).ok();
                    let results: Vec<Outcome> = match queue {
                        // q2 fails item 30; q3 returns no result at all.
                        "q2" => ns
                            .iter()
                            .map(|&n| if n == 30 { Err(item_error(n)) } else { Ok(()) })
                            .collect(),
                        "q3" => vec![],
                        _ => ns.iter().map(|_| Ok(())).collect(),
                    };
                    async move { results }
                },
            )
            .await;
        assert_eq!(
            calls.into_inner().ok(),
            Some(vec![
                ("q1", vec![11, 20]),
                ("q2", vec![10, 30]),
                ("q3", vec![31])
            ])
        );
        assert!(outcomes[0].is_ok());
        assert!(outcomes[1].is_ok());
        assert_eq!(
            outcomes[2]
                .as_ref()
                .err()
                .map(ToString::to_string)
                .as_deref(),
            Some("item 30 not sent")
        );
    }

    /// A handler that borrows itself across the sends, as the functions' `handle` does.
    struct Handler(Vec<u32>);

    impl Handler {
        async fn handle(&self) -> Vec<Outcome> {
            let mut fanout = Fanout::new(1);
            fanout.push(Ok(self.0.clone()));
            let once = fanout
                .send_with(async |items| {
                    tokio::task::yield_now().await;
                    items.iter().map(|_| Ok::<(), RecordError>(())).collect()
                })
                .await;
            let mut fanout = Fanout::new(1);
            fanout.push(Ok(self.0.clone()));
            let grouped = fanout
                .send_grouped(
                    |n| *n % 2,
                    |_, items| async move {
                        tokio::task::yield_now().await;
                        items.iter().map(|_| Ok::<(), RecordError>(())).collect()
                    },
                )
                .await;
            once.into_iter().chain(grouped).collect()
        }
    }

    #[tokio::test]
    async fn handlers_using_fanout_can_be_spawned() {
        let handler = std::sync::Arc::new(Handler(vec![1, 2, 3]));
        let outcomes = tokio::spawn(async move { handler.handle().await })
            .await
            .unwrap_or_default();
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes.iter().all(Result::is_ok));
    }

    #[test]
    fn mapping_errors_are_permanent() {
        let e = RecordError::from(MappingError::EmptyPayload);
        assert!(!e.retryable());
        assert_eq!(e.kind(), "empty_payload");
    }
}
