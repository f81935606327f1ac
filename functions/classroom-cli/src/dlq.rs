//! `classroom dlq ...`: what is in each dead-letter queue and why, and putting it back.
//!
//! The queues by name, each from its variable (the local stack's `stack.env` has them all; in
//! AWS take them from the stack outputs `<Name>DLQUrl` / `<Name>QueueUrl`):
//!
//! | name        | dead-letter queue       | source queue (redrive target) |
//! |-------------|-------------------------|-------------------------------|
//! | `uplink`    | `UPLINK_DLQ_URL`        | `UPLINK_QUEUE_URL`            |
//! | `backend`   | `BACKEND_DLQ_URL`       | `BACKEND_QUEUE_URL`           |
//! | `downlink`  | `DOWNLINK_DLQ_URL`      | `DOWNLINK_QUEUE_URL`          |
//! | `presence`  | `PRESENCE_DLQ_URL`      | `PRESENCE_QUEUE_URL`          |
//! | `rule-errors` | `RULE_ERROR_QUEUE_URL` | none (the IoT rules' error action; show and purge only) |
//!
//! A message the functions dead-lettered carries its reason in `classroom.failure` (see
//! `kit::deadletter`); one the queue's redrive policy moved has none and is counted as
//! `unexplained`.
//!
//! Reading a queue receives its messages with a hold ([`HOLD_SECS`]) so each is seen once, then
//! makes the ones it leaves visible again at once. A redrive sends each chosen message to the
//! source queue with its original attributes (packed ones unpacked, the failure removed) and
//! only then deletes it from the DLQ: a crash between the two leaves it in both (at-least-once,
//! never lost); a crash before the send leaves it in the DLQ, visible again after the hold.
//! `redrive <queue>` without message IDs first asks SQS for a message move task (SQS moves
//! everything, server-side, to the source queue; the functions restore each message when they
//! receive it); where the endpoint has none (moto), it redrives message by message.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, QueueAttributeName};
use kit::deadletter::{self, Failure};
use kit::{ConfigError, Env, SqsSender};
use serde_json::{Value, json};

/// How long a read holds the messages it received, seconds: long enough to send and delete
/// each one; a crash leaves them invisible no longer than this.
pub const HOLD_SECS: i32 = 120;
/// Most messages one `show`, `list` or `redrive` reads by default.
pub const DEFAULT_MAX: usize = 1000;

/// A dead-letter queue the CLI knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queue {
    /// Its name on the command line.
    pub name: &'static str,
    /// The variable holding its URL.
    pub var: &'static str,
    /// The variable holding its source queue's URL (`None`: nothing to redrive to).
    pub source_var: Option<&'static str>,
}

/// Every queue `dlq list` looks at.
pub const QUEUES: [Queue; 5] = [
    Queue {
        name: "uplink",
        var: "UPLINK_DLQ_URL",
        source_var: Some("UPLINK_QUEUE_URL"),
    },
    Queue {
        name: "backend",
        var: "BACKEND_DLQ_URL",
        source_var: Some("BACKEND_QUEUE_URL"),
    },
    Queue {
        name: "downlink",
        var: "DOWNLINK_DLQ_URL",
        source_var: Some("DOWNLINK_QUEUE_URL"),
    },
    Queue {
        name: "presence",
        var: "PRESENCE_DLQ_URL",
        source_var: Some("PRESENCE_QUEUE_URL"),
    },
    Queue {
        name: "rule-errors",
        var: "RULE_ERROR_QUEUE_URL",
        source_var: None,
    },
];

/// The queue called `name`.
pub fn queue(name: &str) -> Option<Queue> {
    QUEUES.iter().copied().find(|q| q.name == name)
}

/// `classroom dlq ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DlqCommand {
    /// Each DLQ's messages, counted by failure kind.
    List,
    /// A DLQ's messages with their reasons.
    Show {
        /// The queue.
        queue: Queue,
        /// At most this many.
        max: usize,
    },
    /// Back to the source queue: these message IDs, or all.
    Redrive {
        /// The queue.
        queue: Queue,
        /// The DLQ message IDs (empty: all).
        ids: Vec<String>,
    },
    /// Delete every message (only with `--yes`).
    Purge {
        /// The queue.
        queue: Queue,
        /// `--yes` was given.
        confirmed: bool,
    },
}

/// A command-line mistake.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct DlqUsage(pub String);

impl DlqCommand {
    /// Parses the arguments after `dlq`.
    pub fn parse(args: &[String]) -> Result<Self, DlqUsage> {
        let names = QUEUES.map(|q| q.name).join(", ");
        let named = |a: Option<&String>| -> Result<Queue, DlqUsage> {
            let a = a.ok_or_else(|| DlqUsage(format!("name a queue: {names}")))?;
            queue(a).ok_or_else(|| DlqUsage(format!("unknown queue {a:?}: one of {names}")))
        };
        match args.split_first() {
            Some((sub, rest)) if sub == "list" && rest.is_empty() => Ok(Self::List),
            Some((sub, rest)) if sub == "show" => {
                let queue = named(rest.first())?;
                let max = match &rest[1..] {
                    [] => DEFAULT_MAX.min(10),
                    [flag, n] if flag == "--max" => n
                        .parse()
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or_else(|| DlqUsage(format!("--max takes a count, not {n:?}")))?,
                    other => return Err(DlqUsage(format!("show: unexpected {other:?}"))),
                };
                Ok(Self::Show { queue, max })
            }
            Some((sub, rest)) if sub == "redrive" => {
                let queue = named(rest.first())?;
                if queue.source_var.is_none() {
                    return Err(DlqUsage(format!(
                        "{} has no source queue to redrive to (show or purge it)",
                        queue.name
                    )));
                }
                let ids = rest[1..].to_vec();
                if let Some(flag) = ids.iter().find(|a| a.starts_with("--")) {
                    return Err(DlqUsage(format!("redrive: unknown option {flag:?}")));
                }
                Ok(Self::Redrive { queue, ids })
            }
            Some((sub, rest)) if sub == "purge" => {
                let queue = named(rest.first())?;
                let confirmed = match &rest[1..] {
                    [] => false,
                    [yes] if yes == "--yes" => true,
                    other => return Err(DlqUsage(format!("purge: unexpected {other:?}"))),
                };
                Ok(Self::Purge { queue, confirmed })
            }
            _ => Err(DlqUsage(
                "dlq needs a subcommand: list, show <queue>, redrive <queue> [<messageId>...] or purge <queue> --yes"
                    .to_owned(),
            )),
        }
    }
}

/// Why a `dlq` command failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// A variable is missing.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An SQS call failed.
    #[error("{call} on {queue}: {error}")]
    Sqs {
        /// The call.
        call: &'static str,
        /// The queue URL.
        queue: String,
        /// SQS's error.
        error: String,
    },
    /// `purge` without `--yes`.
    #[error("purge deletes all {messages} message(s) of {queue} for good: run it again with --yes")]
    Unconfirmed {
        /// The queue name.
        queue: &'static str,
        /// Messages in it now.
        messages: u64,
    },
    /// Some message IDs were not in the DLQ (the others were redriven).
    #[error("not in {queue}: {ids:?} (redriven: {redriven})")]
    NotFound {
        /// The queue name.
        queue: &'static str,
        /// The IDs not found.
        ids: Vec<String>,
        /// How many were redriven.
        redriven: usize,
    },
}

fn sqs_error<E: std::error::Error + 'static>(
    call: &'static str,
    queue: &str,
) -> impl FnOnce(E) -> DlqError {
    let queue = queue.to_owned();
    move |e| DlqError::Sqs {
        call,
        queue,
        error: aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
    }
}

/// One dead letter as read: its message, original attributes and failure.
struct Letter {
    message: aws_sdk_sqs::types::Message,
    originals: deadletter::Attributes,
    failure: Option<Failure>,
}

impl Letter {
    fn id(&self) -> &str {
        self.message.message_id().unwrap_or_default()
    }

    /// The message as `show` prints it (one JSON line).
    fn to_json(&self) -> Value {
        let body = self.message.body().unwrap_or_default();
        let shown: String = body.chars().take(500).collect();
        json!({
            "messageId": self.id(),
            "failure": self.failure,
            "attributes": self.originals,
            "body": shown,
            "bodyBytes": body.len(),
        })
    }
}

/// Counts per failure kind (`unexplained` for a message without a failure).
pub fn tally<'f>(failures: impl IntoIterator<Item = Option<&'f Failure>>) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for f in failures {
        let kind = f.map_or("unexplained", |f| f.kind.as_str());
        *counts.entry(kind.to_owned()).or_insert(0) += 1;
    }
    counts
}

struct Dlq<'a> {
    sqs: &'a aws_sdk_sqs::Client,
    url: String,
}

impl Dlq<'_> {
    async fn attribute(&self, name: QueueAttributeName) -> Result<String, DlqError> {
        let resp = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(name.clone())
            .send()
            .await
            .map_err(sqs_error("GetQueueAttributes", &self.url))?;
        Ok(resp
            .attributes()
            .and_then(|a| a.get(&name))
            .cloned()
            .unwrap_or_default())
    }

    async fn depth(&self) -> Result<u64, DlqError> {
        Ok(self
            .attribute(QueueAttributeName::ApproximateNumberOfMessages)
            .await?
            .parse()
            .unwrap_or(0))
    }

    /// Receives up to `max` messages, each once, holding them for [`HOLD_SECS`].
    async fn read(&self, max: usize) -> Result<Vec<Letter>, DlqError> {
        let mut letters: Vec<Letter> = Vec::new();
        while letters.len() < max {
            let want = i32::try_from((max - letters.len()).min(10)).unwrap_or(10);
            let resp = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(want)
                .visibility_timeout(HOLD_SECS)
                .message_attribute_names("All")
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(sqs_error("ReceiveMessage", &self.url))?;
            let got = resp.messages.unwrap_or_default();
            if got.is_empty() {
                break;
            }
            for message in got {
                let (originals, failure) =
                    match deadletter::restore(kit::sqs::attributes_of(&message)) {
                        Ok(restored) => restored,
                        // A broken pack: show and redrive the attributes as they are.
                        Err(_) => (kit::sqs::attributes_of(&message), None),
                    };
                letters.push(Letter {
                    message,
                    originals,
                    failure,
                });
            }
        }
        Ok(letters)
    }

    /// Makes these messages visible again now (what a read leaves behind).
    async fn release(&self, letters: &[&Letter]) -> Result<(), DlqError> {
        for chunk in letters.chunks(10) {
            let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, l)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(l.message.receipt_handle().unwrap_or_default())
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            self.sqs
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(sqs_error("ChangeMessageVisibilityBatch", &self.url))?;
        }
        Ok(())
    }
}

/// Runs a `dlq` command; returns what to print (JSON lines).
pub async fn run(
    command: &DlqCommand,
    env: &Env,
    sqs: &aws_sdk_sqs::Client,
) -> Result<String, DlqError> {
    let dlq = |q: &Queue| -> Result<Dlq<'_>, DlqError> {
        Ok(Dlq {
            sqs,
            url: env.required(
                q.var,
                "set it to the queue's URL (stack output, or the local stack's .run/stack.env)",
            )?,
        })
    };
    match command {
        DlqCommand::List => {
            let mut lines = Vec::new();
            for q in QUEUES.iter().filter(|q| env.get(q.var).is_some()) {
                let d = dlq(q)?;
                let letters = d.read(DEFAULT_MAX).await?;
                let refs: Vec<&Letter> = letters.iter().collect();
                d.release(&refs).await?;
                let depth = d.depth().await?;
                lines.push(
                    json!({
                        "queue": q.name,
                        "messages": depth.max(letters.len() as u64),
                        "byKind": tally(letters.iter().map(|l| l.failure.as_ref())),
                    })
                    .to_string(),
                );
            }
            Ok(lines.join("\n"))
        }
        DlqCommand::Show { queue, max } => {
            let d = dlq(queue)?;
            let letters = d.read(*max).await?;
            let refs: Vec<&Letter> = letters.iter().collect();
            d.release(&refs).await?;
            Ok(letters
                .iter()
                .map(|l| l.to_json().to_string())
                .collect::<Vec<_>>()
                .join("\n"))
        }
        DlqCommand::Redrive { queue, ids } => {
            let d = dlq(queue)?;
            let Some(source_var) = queue.source_var else {
                return Ok(String::new());
            };
            let source = env.required(source_var, "set it to the source queue's URL")?;
            let mut unavailable = None;
            if ids.is_empty() {
                match move_task(&d, sqs, &source).await? {
                    Ok(started) => return Ok(started),
                    Err(why) => unavailable = Some(why),
                }
            }
            let mut out = redrive(&d, queue, &source, ids).await?;
            if let Some(why) = unavailable {
                out["moveTask"] = json!(format!("unavailable on this endpoint: {why}"));
            }
            Ok(out.to_string())
        }
        DlqCommand::Purge { queue, confirmed } => {
            let d = dlq(queue)?;
            let messages = d.depth().await?;
            if !confirmed {
                return Err(DlqError::Unconfirmed {
                    queue: queue.name,
                    messages,
                });
            }
            sqs.purge_queue()
                .queue_url(&d.url)
                .send()
                .await
                .map_err(sqs_error("PurgeQueue", &d.url))?;
            Ok(json!({"queue": queue.name, "purged": messages}).to_string())
        }
    }
}

/// Starts SQS's message move task from the DLQ to the source queue; `Err(why)` when the
/// endpoint has no move tasks (then the caller redrives message by message).
async fn move_task(
    d: &Dlq<'_>,
    sqs: &aws_sdk_sqs::Client,
    source: &str,
) -> Result<Result<String, String>, DlqError> {
    let dlq_arn = d.attribute(QueueAttributeName::QueueArn).await?;
    let source_arn = Dlq {
        sqs,
        url: source.to_owned(),
    }
    .attribute(QueueAttributeName::QueueArn)
    .await?;
    match sqs
        .start_message_move_task()
        .source_arn(&dlq_arn)
        .destination_arn(&source_arn)
        .send()
        .await
    {
        Ok(task) => Ok(Ok(
            json!({
                "moveTask": task.task_handle(),
                "from": dlq_arn,
                "to": source_arn,
                "note": "SQS moves the messages server-side; follow it with `aws sqs list-message-move-tasks --source-arn <from>`",
            })
            .to_string(),
        )),
        Err(e) => Ok(Err(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())),
    }
}

/// Receive → send to the source → delete, for the chosen messages (all when `ids` is empty).
async fn redrive(
    d: &Dlq<'_>,
    queue: &Queue,
    source: &str,
    ids: &[String],
) -> Result<Value, DlqError> {
    let sender = SqsSender::new(d.sqs.clone());
    let letters = d.read(DEFAULT_MAX.max(ids.len())).await?;
    let (chosen, others): (Vec<&Letter>, Vec<&Letter>) = letters
        .iter()
        .partition(|l| ids.is_empty() || ids.iter().any(|id| id == l.id()));
    d.release(&others).await?;
    let mut moved = Vec::new();
    for letter in &chosen {
        let body = letter.message.body().unwrap_or_default();
        let new_id = sender
            .send_one(source, body, &letter.originals)
            .await
            .map_err(|e| DlqError::Sqs {
                call: "SendMessage",
                queue: source.to_owned(),
                error: e.to_string(),
            })?;
        d.sqs
            .delete_message()
            .queue_url(&d.url)
            .receipt_handle(letter.message.receipt_handle().unwrap_or_default())
            .send()
            .await
            .map_err(sqs_error("DeleteMessage", &d.url))?;
        moved.push(json!({"from": letter.id(), "to": new_id}));
    }
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !letters.iter().any(|l| l.id() == id.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(DlqError::NotFound {
            queue: queue.name,
            ids: missing,
            redriven: moved.len(),
        });
    }
    Ok(json!({"queue": queue.name, "redriven": moved.len(), "messages": moved}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn subcommands_parse_and_name_their_mistakes() {
        let downlink = queue("downlink").unwrap();
        assert_eq!(DlqCommand::parse(&args(&["list"])), Ok(DlqCommand::List));
        assert_eq!(
            DlqCommand::parse(&args(&["show", "downlink", "--max", "3"])),
            Ok(DlqCommand::Show {
                queue: downlink,
                max: 3
            })
        );
        assert_eq!(
            DlqCommand::parse(&args(&["redrive", "downlink", "m1", "m2"])),
            Ok(DlqCommand::Redrive {
                queue: downlink,
                ids: args(&["m1", "m2"])
            })
        );
        assert_eq!(
            DlqCommand::parse(&args(&["purge", "downlink"])),
            Ok(DlqCommand::Purge {
                queue: downlink,
                confirmed: false
            })
        );
        for (bad, says) in [
            (&["show", "nowhere"][..], "unknown queue"),
            (&["show"][..], "name a queue"),
            (&["show", "uplink", "--max", "0"][..], "--max"),
            (&["redrive", "rule-errors"][..], "no source queue"),
            (&["redrive", "uplink", "--all"][..], "unknown option"),
            (&["purge", "uplink", "--force"][..], "unexpected"),
            (&["drain"][..], "subcommand"),
        ] {
            let e = DlqCommand::parse(&args(bad)).unwrap_err();
            assert!(e.0.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn tally_counts_by_kind_and_unexplained() {
        let f = |kind: &str| Failure {
            kind: kind.into(),
            retryable: false,
            reason: String::new(),
            function: "inflow".into(),
            source_queue: String::new(),
            first_failure_at: None,
            receive_count: 1,
            dead_lettered_at: 0,
        };
        let (a, b) = (f("bad_subtopic"), f("oversize"));
        let counts = tally([Some(&a), None, Some(&a), Some(&b)]);
        assert_eq!(
            counts,
            BTreeMap::from([
                ("bad_subtopic".to_owned(), 2),
                ("oversize".to_owned(), 1),
                ("unexplained".to_owned(), 1)
            ])
        );
    }
}
