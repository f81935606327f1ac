//! The classroom admin CLI (`classroom`), as a library so it is tested without a shell.
//!
//! # Layout
//! - [`Command`]: the parsed command line ([`USAGE`]).
//! - [`run`]: runs a command with the functions' configuration:
//!   - `classroom notify "text" [--id <msgId>]` sends a system notice (`{"type":"system",...}`)
//!     to `room/system` through the downlink queue (`DOWNLINK_QUEUE_URL`); the inflow function
//!     publishes it. Prints the notice ID. Pass `--id` to resend the same notice (clients
//!     de-duplicate by `msgId`).
//!   - `classroom online <clientId>...` asks whether 1 to 10 clients are online, from the
//!     presence table (`PRESENCE_TABLE`), and prints one JSON answer per line.

use kit::{ConfigError, Env, OutgoingMessage, SendError, SqsSender};
use mapping::{Notice, SystemNotice};
use presence_query::{Answer, QueryError};

/// The usage text.
pub const USAGE: &str = "usage:
  classroom notify \"<text>\" [--id <msgId>]   send a system notice to room/system
  classroom online <clientId>...             is each of 1..10 clients online?

environment: DOWNLINK_QUEUE_URL (notify), PRESENCE_TABLE (online), UPLINK_PARENTS,
DOWNLINK_PARENTS, TOPIC_MAX_CHARS, PAYLOAD_MAX_BYTES, and the AWS variables
(AWS_ENDPOINT_URL for a local moto).";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
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
}

/// A command line that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

impl Command {
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
                if rest.is_empty() || rest.len() > presence_query::MAX_BATCH {
                    return Err(UsageError(format!(
                        "online takes 1 to {} client IDs, not {}",
                        presence_query::MAX_BATCH,
                        rest.len()
                    )));
                }
                Ok(Self::Online {
                    clients: rest.to_vec(),
                })
            }
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
    /// The presence query failed.
    #[error(transparent)]
    Query(#[from] QueryError),
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
    command: &Command,
    env: &Env,
    sdk: &aws_config::SdkConfig,
) -> Result<String, RunError> {
    let rules = env.rules()?;
    match command {
        Command::Notify { text, id } => {
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
        Command::Online { clients } => {
            let query = presence_query::Function::from_env_with(env, sdk)?;
            let ids = presence_query::parse_clients(clients)?;
            let answers: Vec<Answer> = query.online(&ids).await?;
            Ok(answers
                .iter()
                .map(|a| serde_json::to_string(a).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n"))
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
            Command::parse(&args(&["notify", "class starts"])),
            Ok(Command::Notify {
                text: "class starts".to_owned(),
                id: None
            })
        );
        assert_eq!(
            Command::parse(&args(&["notify", "--id", "n1", "hi"])),
            Ok(Command::Notify {
                text: "hi".to_owned(),
                id: Some("n1".to_owned())
            })
        );
        assert!(Command::parse(&args(&["notify"])).is_err());
        assert!(Command::parse(&args(&["notify", "a", "b"])).is_err());
        assert!(Command::parse(&args(&["notify", "hi", "--id"])).is_err());
    }

    #[test]
    fn online_takes_one_to_ten_clients() {
        assert!(Command::parse(&args(&["online"])).is_err());
        let ten: Vec<String> = std::iter::once("online".to_owned())
            .chain((0..10).map(|i| format!("GID_student@@@{i:03}")))
            .collect();
        assert!(Command::parse(&ten).is_ok());
        let mut eleven = ten.clone();
        eleven.push("GID_student@@@010".to_owned());
        assert!(Command::parse(&eleven).is_err());
        assert!(Command::parse(&args(&["kick"])).is_err());
        assert!(Command::parse(&[]).is_err());
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
