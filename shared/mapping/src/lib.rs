//! Pure message mapping for the classroom MQTT rules (§3-§5).
//!
//! No IO, no clock, no async: time and IDs are arguments, so every function here is
//! deterministic and tested without a broker or a queue.
//!
//! # Layout
//! - [`classroom`]: the classroom rules, one file per function, each a pure function of
//!   (record, state read, now) -> (writes, notices): [`classroom::moderation`],
//!   [`classroom::presence`], [`classroom::query`].
//! - [`names`]: client IDs `<GroupID>@@@<DeviceID>`, Group IDs, room IDs, roles (§3).
//! - [`topic`]: parent + sub-topic, normalisation, level validation, length limit, P2P (§3).
//! - [`config`]: uplink/downlink parents with the loop guard, routes, limits (§2, §5).
//! - [`outflow`]: the outflow rule's mapping: the §4.1 uplink record to the §4.2 backend
//!   message, and the §4.2 decode ([`outflow::Origin`]) next to its encode.
//! - [`inflow`]: the inflow rule's mapping: the §4.3 downlink record (encode,
//!   [`DownlinkRecord`], and decode, [`DownlinkMessage`]) to an MQTT publish.
//! - [`error`]: the typed mapping error, with its kind and whether a retry can help.
//! - [`lifecycle`]: the two §4.4 lifecycle event shapes normalised to one event.
//! - [`presence`]: the presence reducer (per-channel state, online/offline transitions).
//! - [`moderation`]: the banned-word and length policy for chat, with its verdict.
//! - [`command`]: chat and command bodies from clients, and the mute authorization rule.
//! - [`notice`]: the §4.5 shapes clients receive, as §4.3 downlink records.
//! - [`refusal`]: [`Refusal`], the one vocabulary of refusals (policy, authorization, rule),
//!   with each wire name written once.
//!
//! # Outflow and inflow, uplink and downlink
//! Modules are named after the rule functions that use them (`outflow`, `inflow`: the
//! product's names for the two rules). *Uplink* and *downlink* name a direction, and so the
//! queues and their records: the outflow rule reads the **uplink** queue (what devices
//! publish, [`UplinkRecord`]) and writes backend queues; the inflow rule reads the
//! **downlink** queue ([`DownlinkRecord`]) and publishes to MQTT. The configuration keeps
//! the direction names (`UPLINK_PARENTS`, `DOWNLINK_PARENTS`, `DOWNLINK_QUEUE_URL`).

pub mod classroom;
pub mod command;
pub mod config;
pub mod error;
pub mod inflow;
pub mod lifecycle;
pub mod moderation;
pub mod names;
pub mod notice;
pub mod outflow;
pub mod presence;
pub mod refusal;
pub mod topic;

pub use command::{ChatMessage, Command, ParseError, authorize};
pub use config::{Limits, Routes, RulesConfig, RulesError};
pub use error::MappingError;
pub use inflow::{AttrValue, DownlinkMessage, DownlinkRecord, Publish, Qos, downlink_to_publish};
pub use lifecycle::{LifecycleEvent, LifecycleKind, OfflineReason};
pub use moderation::{Mode, Policy, Verdict, WordListError};
pub use names::{ClientId, GroupId, NameError, Role, Roles, RoomId};
pub use notice::{
    ChatNotice, MemberStatus, Notice, P2pBody, P2pNotice, StatusNotice, SystemNotice,
    members_notices, notice_id,
};
pub use outflow::{
    BackendMessage, Encoding, Routed, UplinkRecord, map_uplink_body, uplink_to_backend,
};
pub use presence::{Applied, ChannelState, ClientPresence, Offline, Transition};
pub use refusal::Refusal;
pub use topic::{Parent, SubTopic, Topic, TopicError};
