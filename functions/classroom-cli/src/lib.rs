//! The classroom admin CLI (`classroom`), as a library so it is tested without a shell.
//!
//! # Layout
//! - [`CliCommand`]: the parsed command line ([`USAGE`]).
//! - [`run`]: runs a command with the functions' configuration:
//!   - `classroom notify "text" [--id <msgId>]` sends a system notice (`{"type":"system",...}`)
//!     to `room/system` through the downlink queue (`DOWNLINK_QUEUE_URL`); the inflow function
//!     publishes it. Prints the notice ID. Pass `--id` to resend the same notice (clients
//!     de-duplicate by `msgId`).
//!   - `classroom online <clientId>...` asks whether 1 to 10 clients are online, from the
//!     presence table (`PRESENCE_TABLE`), and prints one JSON answer per line: the presence
//!     query's rule (`mapping::classroom::query`) over the presence store
//!     (`stores::PresenceStore`), as the presence-query function answers it.
//!   - `classroom dlq list|show|redrive|purge` ([`dlq`]): what each dead-letter queue holds,
//!     counted by failure kind, each message with its reason, redrive to the source queue
//!     (SQS's message move task where the endpoint has one, else receive → send → delete),
//!     purge with `--yes`.
//!   - `classroom token issue|classroom|status|revoke|revoke-client|query ...` ([`TokenCommand`])
//!     runs the token issuer's operation ([`TokenCommand::operation`]) on the `issuer` service
//!     in-process, the one the token function's HTTP API routes to, and prints its JSON answer
//!     (the body the HTTP API returns); a refusal is an error (exit code 1) with its status and
//!     JSON on stderr. The issuer's variables apply (`TOKEN_TABLE`, `ENROLLMENT_TABLE`,
//!     `SIGNING_KEYS_SECRET_ID`, `IOT_ARN_PREFIX`, ...).
//!
//! # What it links
//! Our libraries only, no function crate: `issuer` (with `stores` and `signin`), `stores`
//! (the presence read), `mapping`, and `kit` for the configuration, the SQS sender and the
//! secret read; the AWS SDK's DynamoDB, SQS and Secrets Manager clients. No Lambda runtime
//! crate (`lambda_http`, `lambda_runtime`, `aws_lambda_events`): check with
//! `cargo tree -p classroom-cli -e normal`.

pub mod dlq;

pub use dlq::DlqCommand;
use issuer::{ApiError, ClassroomRequest, IssueRequest, Issuer, Operation, QueryRequest};
use kit::{ConfigError, Env, OutgoingMessage, SendError, SqsSender};
use mapping::classroom::query::{self, QueryError};
use mapping::{Notice, SystemNotice};
use stores::{PresenceStore, StoreError};

pub use issuer::Expiry;

/// The usage text.
pub const USAGE: &str = "usage:
  classroom notify \"<text>\" [--id <msgId>]   send a system notice to room/system
  classroom online <clientId>...             is each of 1..10 clients online?
  classroom token issue <clientId> [--read <filter>]... [--write <filter>]...
                  [--expires-in <s> | --expire-time <ms since the epoch>]
                                             issue a token (default --expires-in 3600)
  classroom token classroom <clientId> <roomId>... [--expires-in <s>]
                                             a classroom token for the rooms, with enrollment
  classroom token status <tokenId>           active, revoked or expired
  classroom token revoke <tokenId>           revoke one token
  classroom token revoke-client <clientId>   revoke every token of a client issued so far
  classroom token query <token | -> [--client <clientId>]
                                             verify a token (`-`: read it from stdin)
  classroom dlq list                         each dead-letter queue: messages by failure kind
  classroom dlq show <queue> [--max <n>]     its messages with their reasons (default 10)
  classroom dlq redrive <queue> [<messageId>...]
                                             back to the source queue (all when no ID)
  classroom dlq purge <queue> --yes          delete every message of the queue
    <queue>: uplink, backend, downlink, presence, rule-errors

environment: DOWNLINK_QUEUE_URL (notify), PRESENCE_TABLE (online), <QUEUE>_DLQ_URL,
<QUEUE>_QUEUE_URL and RULE_ERROR_QUEUE_URL (dlq), TOKEN_TABLE,
ENROLLMENT_TABLE, SIGNING_KEYS_SECRET_ID, IOT_ARN_PREFIX, TOKEN_MIN_LIFETIME_SECS,
TOKEN_MAX_LIFETIME_SECS, TEACHER_GROUPS, STUDENT_GROUPS (token), UPLINK_PARENTS,
DOWNLINK_PARENTS, TOPIC_MAX_CHARS, PAYLOAD_MAX_BYTES, and the AWS variables
(AWS_ENDPOINT_URL for a local moto).";

/// The lifetime `token issue` and `token classroom` ask for when none is given, seconds.
pub const DEFAULT_EXPIRES_IN: u64 = 3600;

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliCommand {
    /// Send a system notice.
    Notify {
        /// The text.
        text: String,
        /// The notice ID (generated when absent).
        id: Option<String>,
    },
    /// Ask who is online.
    Online {
        /// 1 to 10 client IDs.
        clients: Vec<String>,
    },
    /// A call of the token issuer.
    Token(TokenCommand),
    /// A look at, or a redrive or purge of, a dead-letter queue.
    Dlq(DlqCommand),
}

/// `classroom token ...`: one operation of the token issuer (with its HTTP route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCommand {
    /// `POST /tokens`.
    Issue {
        /// The client.
        client_id: String,
        /// Read filters.
        read: Vec<String>,
        /// Write filters.
        write: Vec<String>,
        /// The expiry.
        expiry: Expiry,
    },
    /// `POST /tokens/classroom`.
    Classroom {
        /// The client.
        client_id: String,
        /// The rooms.
        rooms: Vec<String>,
        /// Seconds.
        expires_in: u64,
    },
    /// `GET /tokens/{tokenId}`.
    Status {
        /// The token ID.
        token_id: String,
    },
    /// `POST /tokens/{tokenId}/revoke`.
    Revoke {
        /// The token ID.
        token_id: String,
    },
    /// `POST /clients/{clientId}/revoke`.
    RevokeClient {
        /// The client.
        client_id: String,
    },
    /// `POST /tokens/query`.
    Query {
        /// The token (`-` on the command line: read from stdin before running).
        token: String,
        /// The client it must be for, if given.
        client_id: Option<String>,
    },
}

fn value_of<'a>(
    flag: &str,
    it: &mut impl Iterator<Item = &'a String>,
) -> Result<&'a String, UsageError> {
    it.next()
        .ok_or_else(|| UsageError(format!("{flag} needs a value")))
}

fn seconds(flag: &str, value: &str) -> Result<u64, UsageError> {
    value
        .parse()
        .map_err(|_| UsageError(format!("{flag} takes a whole number, not {value:?}")))
}

impl TokenCommand {
    /// Parses the arguments after `token`.
    pub fn parse(args: &[String]) -> Result<Self, UsageError> {
        let Some((sub, rest)) = args.split_first() else {
            return Err(UsageError(
                "token needs a subcommand: issue, classroom, status, revoke, revoke-client or query"
                    .to_owned(),
            ));
        };
        let mut positional = Vec::new();
        let mut read = Vec::new();
        let mut write = Vec::new();
        let mut expires_in = None;
        let mut expire_time = None;
        let mut client = None;
        let mut it = rest.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--read" => read.push(value_of(a, &mut it)?.clone()),
                "--write" => write.push(value_of(a, &mut it)?.clone()),
                "--expires-in" => expires_in = Some(seconds(a, value_of(a, &mut it)?)?),
                "--expire-time" => expire_time = Some(seconds(a, value_of(a, &mut it)?)?),
                "--client" => client = Some(value_of(a, &mut it)?.clone()),
                flag if flag.starts_with("--") => {
                    return Err(UsageError(format!("unknown option {flag:?}")));
                }
                _ => positional.push(a.clone()),
            }
        }
        let only = |allowed: &[&str]| -> Result<(), UsageError> {
            let given = [
                ("--read", !read.is_empty()),
                ("--write", !write.is_empty()),
                ("--expires-in", expires_in.is_some()),
                ("--expire-time", expire_time.is_some()),
                ("--client", client.is_some()),
            ];
            match given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
                Some((f, _)) => Err(UsageError(format!("token {sub} does not take {f}"))),
                None => Ok(()),
            }
        };
        let one = |what: &str| -> Result<String, UsageError> {
            match positional.as_slice() {
                [one] => Ok(one.clone()),
                _ => Err(UsageError(format!(
                    "token {sub} takes one {what}, not {}",
                    positional.len()
                ))),
            }
        };
        match sub.as_str() {
            "issue" => {
                only(&["--read", "--write", "--expires-in", "--expire-time"])?;
                let expiry = match (expires_in, expire_time) {
                    (Some(_), Some(_)) => {
                        return Err(UsageError(
                            "give --expires-in or --expire-time, not both".to_owned(),
                        ));
                    }
                    (_, Some(ms)) => Expiry::At(ms),
                    (s, None) => Expiry::In(s.unwrap_or(DEFAULT_EXPIRES_IN)),
                };
                Ok(Self::Issue {
                    client_id: one("client ID")?,
                    read,
                    write,
                    expiry,
                })
            }
            "classroom" => {
                only(&["--expires-in"])?;
                let Some((client_id, rooms)) = positional.split_first() else {
                    return Err(UsageError(
                        "token classroom takes a client ID and its room IDs".to_owned(),
                    ));
                };
                if rooms.is_empty() {
                    return Err(UsageError(
                        "token classroom needs at least one room ID".to_owned(),
                    ));
                }
                Ok(Self::Classroom {
                    client_id: client_id.clone(),
                    rooms: rooms.to_vec(),
                    expires_in: expires_in.unwrap_or(DEFAULT_EXPIRES_IN),
                })
            }
            "status" => {
                only(&[])?;
                Ok(Self::Status {
                    token_id: one("token ID")?,
                })
            }
            "revoke" => {
                only(&[])?;
                Ok(Self::Revoke {
                    token_id: one("token ID")?,
                })
            }
            "revoke-client" => {
                only(&[])?;
                Ok(Self::RevokeClient {
                    client_id: one("client ID")?,
                })
            }
            "query" => {
                only(&["--client"])?;
                Ok(Self::Query {
                    token: one("token (or -)")?,
                    client_id: client,
                })
            }
            other => Err(UsageError(format!("unknown token subcommand {other:?}"))),
        }
    }

    /// The issuer's operation for this command: the same request its HTTP API takes, checked
    /// the same way (a refusal names the field at fault, as over HTTP).
    pub fn operation(&self) -> Result<Operation, ApiError> {
        Ok(match self {
            Self::Issue {
                client_id,
                read,
                write,
                expiry,
            } => Operation::Issue(IssueRequest::new(
                client_id,
                read.clone(),
                write.clone(),
                *expiry,
            )?),
            Self::Classroom {
                client_id,
                rooms,
                expires_in,
            } => Operation::Classroom(ClassroomRequest::new(
                client_id,
                rooms,
                Expiry::In(*expires_in),
            )?),
            Self::Status { token_id } => Operation::Status {
                token_id: token_id.clone(),
            },
            Self::Revoke { token_id } => Operation::Revoke {
                token_id: token_id.clone(),
            },
            Self::RevokeClient { client_id } => Operation::RevokeClient {
                client_id: client_id.clone(),
            },
            Self::Query { token, client_id } => Operation::Query(QueryRequest {
                token: token.clone(),
                client_id: client_id.clone(),
            }),
        })
    }
}

/// A command line that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

impl CliCommand {
    /// Parses the arguments (without the program name).
    pub fn parse(args: &[String]) -> Result<Self, UsageError> {
        match args.split_first() {
            Some((cmd, rest)) if cmd == "notify" => {
                let mut text = None;
                let mut id = None;
                let mut it = rest.iter();
                while let Some(a) = it.next() {
                    if a == "--id" {
                        let v = it
                            .next()
                            .ok_or_else(|| UsageError("--id needs a value".to_owned()))?;
                        id = Some(v.clone());
                    } else if text.is_none() {
                        text = Some(a.clone());
                    } else {
                        return Err(UsageError(format!(
                            "unexpected argument {a:?}: quote the notice text"
                        )));
                    }
                }
                let text = text
                    .filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| UsageError("notify needs a non-empty text".to_owned()))?;
                Ok(Self::Notify { text, id })
            }
            Some((cmd, rest)) if cmd == "online" => {
                if rest.is_empty() || rest.len() > query::MAX_BATCH {
                    return Err(UsageError(format!(
                        "online takes 1 to {} client IDs, not {}",
                        query::MAX_BATCH,
                        rest.len()
                    )));
                }
                Ok(Self::Online {
                    clients: rest.to_vec(),
                })
            }
            Some((cmd, rest)) if cmd == "token" => Ok(Self::Token(TokenCommand::parse(rest)?)),
            Some((cmd, rest)) if cmd == "dlq" => Ok(Self::Dlq(
                DlqCommand::parse(rest).map_err(|e| UsageError(e.0))?,
            )),
            Some((cmd, _)) => Err(UsageError(format!("unknown command {cmd:?}"))),
            None => Err(UsageError("no command".to_owned())),
        }
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is incomplete or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The notice could not be queued.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The presence query was refused.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The presence store failed.
    #[error(transparent)]
    Presence(#[from] StoreError),
    /// The token issuer refused (its status and JSON answer, as over HTTP).
    #[error("the token issuer answered {status}: {body}")]
    Token {
        /// The HTTP status its API answers the refusal with.
        status: u16,
        /// The JSON answer.
        body: String,
    },
    /// A dead-letter queue command failed.
    #[error(transparent)]
    Dlq(#[from] dlq::DlqError),
    /// The notice is larger than the payload limit.
    #[error("the notice is {size} bytes, the limit (PAYLOAD_MAX_BYTES) is {max}")]
    TooLarge {
        /// Body size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// The system notice `notify` sends.
pub fn system_notice(text: &str, id: &str, now_ms: u64) -> Notice {
    Notice::from(SystemNotice::new(text.to_owned(), id.to_owned(), now_ms))
}

/// Runs a command; returns what to print.
pub async fn run(
    command: &CliCommand,
    env: &Env,
    sdk: &aws_config::SdkConfig,
) -> Result<String, RunError> {
    let rules = env.rules()?;
    match command {
        CliCommand::Notify { text, id } => {
            let queue = env.required(
                "DOWNLINK_QUEUE_URL",
                "set it to the downlink queue URL (stack output DownlinkQueueUrl)",
            )?;
            let id = id
                .clone()
                .unwrap_or_else(|| format!("system-{}", uuid::Uuid::new_v4()));
            let downlink = system_notice(text, &id, kit::now_ms()).to_downlink();
            if downlink.body.len() > rules.limits.payload_max_bytes {
                return Err(RunError::TooLarge {
                    size: downlink.body.len(),
                    max: rules.limits.payload_max_bytes,
                });
            }
            let message = OutgoingMessage::from(downlink);
            let sender = SqsSender::new(aws_sdk_sqs::Client::new(sdk));
            for result in sender.send_all(&queue, &[message]).await {
                result?;
            }
            Ok(id)
        }
        CliCommand::Online { clients } => {
            let table = env.required("PRESENCE_TABLE", "set it to the PresenceTable name")?;
            let store = PresenceStore::reader(aws_sdk_dynamodb::Client::new(sdk), table);
            let ids = query::parse_clients(clients)?;
            let snapshots = store.read_many(&ids).await?;
            // As the presence query answers: an over-age channel counts as closed.
            let now_ms = kit::now_ms();
            let current: Vec<_> = snapshots.iter().map(|s| s.presence.as_of(now_ms)).collect();
            let answers = query::answers(&ids, current.iter());
            Ok(answers
                .iter()
                .map(|a| serde_json::to_string(a).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n"))
        }
        CliCommand::Dlq(command) => {
            Ok(dlq::run(command, env, &aws_sdk_sqs::Client::new(sdk)).await?)
        }
        CliCommand::Token(command) => {
            let issuer = Issuer::from_env_with(env, sdk).await?;
            let refused = |e: ApiError| RunError::Token {
                status: e.status.code(),
                body: e.to_json(),
            };
            let operation = command.operation().map_err(refused)?;
            let reply = issuer
                .serve(&operation, kit::now_ms())
                .await
                .map_err(refused)?;
            Ok(serde_json::to_string(&reply).unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn notify_takes_one_text_and_an_optional_id() {
        assert_eq!(
            CliCommand::parse(&args(&["notify", "class starts"])),
            Ok(CliCommand::Notify {
                text: "class starts".to_owned(),
                id: None
            })
        );
        assert_eq!(
            CliCommand::parse(&args(&["notify", "--id", "n1", "hi"])),
            Ok(CliCommand::Notify {
                text: "hi".to_owned(),
                id: Some("n1".to_owned())
            })
        );
        assert!(CliCommand::parse(&args(&["notify"])).is_err());
        assert!(CliCommand::parse(&args(&["notify", "a", "b"])).is_err());
        assert!(CliCommand::parse(&args(&["notify", "hi", "--id"])).is_err());
    }

    #[test]
    fn online_takes_one_to_ten_clients() {
        assert!(CliCommand::parse(&args(&["online"])).is_err());
        let ten: Vec<String> = std::iter::once("online".to_owned())
            .chain((0..10).map(|i| format!("GID_student@@@{i:03}")))
            .collect();
        assert!(CliCommand::parse(&ten).is_ok());
        let mut eleven = ten.clone();
        eleven.push("GID_student@@@010".to_owned());
        assert!(CliCommand::parse(&eleven).is_err());
        assert!(CliCommand::parse(&args(&["kick"])).is_err());
        assert!(CliCommand::parse(&[]).is_err());
    }

    #[test]
    fn token_subcommands_parse_with_their_options() {
        assert_eq!(
            CliCommand::parse(&args(&[
                "token",
                "issue",
                "GID_student@@@001",
                "--read",
                "room/system",
                "--read",
                "room/message/1",
                "--write",
                "roomSend/message",
                "--expires-in",
                "600"
            ])),
            Ok(CliCommand::Token(TokenCommand::Issue {
                client_id: "GID_student@@@001".to_owned(),
                read: args(&["room/system", "room/message/1"]),
                write: args(&["roomSend/message"]),
                expiry: Expiry::In(600),
            }))
        );
        assert_eq!(
            CliCommand::parse(&args(&["token", "issue", "c", "--expire-time", "5000"])),
            Ok(CliCommand::Token(TokenCommand::Issue {
                client_id: "c".to_owned(),
                read: vec![],
                write: vec![],
                expiry: Expiry::At(5000),
            }))
        );
        assert_eq!(
            CliCommand::parse(&args(&["token", "classroom", "c", "1", "2"])),
            Ok(CliCommand::Token(TokenCommand::Classroom {
                client_id: "c".to_owned(),
                rooms: args(&["1", "2"]),
                expires_in: DEFAULT_EXPIRES_IN,
            }))
        );
        assert_eq!(
            CliCommand::parse(&args(&["token", "query", "-", "--client", "c"])),
            Ok(CliCommand::Token(TokenCommand::Query {
                token: "-".to_owned(),
                client_id: Some("c".to_owned()),
            }))
        );
        for bad in [
            &["token"][..],
            &["token", "mint", "c"],
            &["token", "issue"],
            &["token", "issue", "c", "--expires-in", "soon"],
            &[
                "token",
                "issue",
                "c",
                "--expires-in",
                "1",
                "--expire-time",
                "2",
            ],
            &["token", "issue", "c", "--read"],
            &["token", "classroom", "c"],
            &["token", "classroom", "c", "1", "--read", "x"],
            &["token", "status"],
            &["token", "status", "a", "b"],
            &["token", "revoke", "a", "--client", "c"],
            &["token", "revoke-client"],
            &["token", "query", "t", "--force"],
        ] {
            assert!(CliCommand::parse(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_subcommands_are_the_issuers_operations() {
        let student = mapping::ClientId::parse("GID_student@@@001").unwrap();
        let issue = TokenCommand::Issue {
            client_id: "GID_student@@@001".to_owned(),
            read: args(&["room/system"]),
            write: vec![],
            expiry: Expiry::At(9000),
        };
        assert_eq!(
            issue.operation(),
            Ok(Operation::Issue(IssueRequest {
                client: student.clone(),
                read: args(&["room/system"]),
                write: vec![],
                expiry: Expiry::At(9000),
            }))
        );
        let classroom = TokenCommand::Classroom {
            client_id: "GID_student@@@001".to_owned(),
            rooms: args(&["1"]),
            expires_in: 60,
        };
        assert_eq!(
            classroom.operation(),
            Ok(Operation::Classroom(ClassroomRequest {
                client: student,
                rooms: vec![mapping::RoomId::parse("1").unwrap()],
                expiry: Expiry::In(60),
            }))
        );
        // What the issuer refuses is refused as over HTTP, naming the field.
        let bad = TokenCommand::Classroom {
            client_id: "c".to_owned(),
            rooms: args(&["1"]),
            expires_in: 60,
        };
        let e = bad.operation().unwrap_err();
        assert_eq!(
            (e.status.code(), e.field.as_deref()),
            (400, Some("clientId"))
        );
        let revoke_client = TokenCommand::RevokeClient {
            client_id: "GID_student@@@001".to_owned(),
        };
        assert_eq!(
            revoke_client.operation(),
            Ok(Operation::RevokeClient {
                client_id: "GID_student@@@001".to_owned()
            })
        );
        // An argument is never taken for something else: a token ID that is not one is
        // refused by the issuer, naming the field.
        let status = TokenCommand::Status {
            token_id: "../clients/x".to_owned(),
        };
        assert_eq!(
            status.operation(),
            Ok(Operation::Status {
                token_id: "../clients/x".to_owned()
            })
        );
        assert_eq!(
            issuer::check_token_id("../clients/x")
                .unwrap_err()
                .field
                .as_deref(),
            Some("tokenId")
        );
        let query = TokenCommand::Query {
            token: "ct1.x".to_owned(),
            client_id: None,
        };
        assert_eq!(
            query.operation(),
            Ok(Operation::Query(QueryRequest {
                token: "ct1.x".to_owned(),
                client_id: None
            }))
        );
    }

    #[test]
    fn the_system_notice_has_its_shape_and_topic() {
        let d = system_notice("class starts", "n1", 5).to_downlink();
        assert_eq!(d.second_topic.as_str(), "/system");
        assert_eq!(
            d.body,
            r#"{"type":"system","msg":"class starts","msgId":"n1","ts":5}"#
        );
    }
}
