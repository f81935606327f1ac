//! What `Function::handle` reports about each failed record: the one `warn` line the batch
//! driver logs inside the record's span (`message_id`), with `error`, `error.kind` and
//! `error.retryable`. Captured by a minimal `tracing` subscriber (the handler's real log
//! events, not a re-computation), on the current thread only.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Fields by name, values as logged (`Display` for `%` fields, `Debug` otherwise).
pub type Fields = BTreeMap<String, String>;

/// One captured event: its fields and the fields of the span it was logged in.
#[derive(Debug, Clone)]
pub struct Line {
    /// The event's level.
    pub level: tracing::Level,
    /// The event's fields (`message` included).
    pub fields: Fields,
    /// The fields of the innermost span the event was logged in (empty outside spans).
    pub span: Fields,
}

#[derive(Default)]
struct State {
    spans: Vec<Fields>,
    stack: Vec<u64>,
    lines: Vec<Line>,
}

/// A subscriber that keeps every event; clone it to read what was logged.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<State>>);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Capture {
    /// Runs `f` with this subscriber as the current thread's default.
    pub fn during<T>(&self, f: impl FnOnce() -> T) -> T {
        let _guard = tracing::subscriber::set_default(self.clone());
        f()
    }

    /// Every event logged so far.
    pub fn lines(&self) -> Vec<Line> {
        self.0.lock().unwrap().lines.clone()
    }

    /// The failures the batch driver logged, by message ID: (error, kind, retryable). A
    /// record the settler dead-lettered (its line has `dlq_message_id`) was handled, not
    /// reported failed, and is not among them.
    pub fn failures(&self) -> BTreeMap<String, (String, String, bool)> {
        self.lines()
            .into_iter()
            .filter(|l| {
                l.level == tracing::Level::WARN
                    && l.fields.contains_key("error.kind")
                    && !l.fields.contains_key("dlq_message_id")
            })
            .map(|l| {
                let id = l
                    .span
                    .get("message_id")
                    .cloned()
                    .expect("a failure is logged in its record's span");
                let f = |k: &str| l.fields.get(k).cloned().unwrap_or_default();
                (
                    id,
                    (f("error"), f("error.kind"), f("error.retryable") == "true"),
                )
            })
            .collect()
    }

    /// [`Capture::failures`], after checking that they are exactly the records the handler
    /// reported failed (`reported`: the response's `batchItemFailures` identifiers): every
    /// reported record has its logged error, and only those.
    pub fn reported_failures(
        &self,
        reported: impl IntoIterator<Item = String>,
    ) -> BTreeMap<String, (String, String, bool)> {
        let failures = self.failures();
        assert_eq!(
            failures
                .keys()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>(),
            reported.into_iter().collect(),
            "every reported record has its logged error, and only those"
        );
        failures
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let mut fields = Fields::new();
        attributes.record(&mut Visitor(&mut fields));
        let mut state = self.0.lock().unwrap();
        state.spans.push(fields);
        Id::from_u64(state.spans.len() as u64)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut state = self.0.lock().unwrap();
        if let Some(fields) = state.spans.get_mut(span.into_u64() as usize - 1) {
            values.record(&mut Visitor(fields));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        let mut state = self.0.lock().unwrap();
        let parent = if event.is_contextual() {
            state.stack.last().copied()
        } else {
            event.parent().map(Id::into_u64)
        };
        let span = parent
            .and_then(|id| state.spans.get(id as usize - 1).cloned())
            .unwrap_or_default();
        state.lines.push(Line {
            level: *event.metadata().level(),
            fields,
            span,
        });
    }

    fn enter(&self, span: &Id) {
        self.0.lock().unwrap().stack.push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut state = self.0.lock().unwrap();
        if let Some(at) = state.stack.iter().rposition(|s| *s == span.into_u64()) {
            state.stack.remove(at);
        }
    }
}
