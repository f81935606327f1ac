//! Pure message mapping for the classroom MQTT rules (SPEC §3-§5).
//!
//! No IO, no clock, no async: time and IDs are arguments, so every function here is
//! deterministic and tested without a broker or a queue.
//!
//! # Layout
//! - [`names`]: client IDs `<GroupID>@@@<DeviceID>`, Group IDs, room IDs, roles (§3).
//! - [`topic`]: parent + sub-topic, normalisation, level validation, length limit, P2P (§3).
//! - [`config`]: uplink/downlink parents with the loop guard, routes, limits (§2, §5).
//! - [`uplink`]: the §4.1 uplink record and its mapping to the §4.2 backend message.
//! - [`downlink`]: the §4.3 downlink message and its mapping to an MQTT publish.
//! - [`error`]: the typed mapping error, with its kind and whether a retry can help.
//! - [`lifecycle`]: the two §4.4 lifecycle event shapes normalised to one event.
//! - [`presence`]: the presence reducer (per-channel state, online/offline transitions).
//! - [`moderation`]: the banned-word and length policy for chat, with its verdict.
//! - [`command`]: chat and command bodies from clients, and the mute authorization rule.
//! - [`notice`]: the §4.5 shapes clients receive, as §4.3 downlink messages.

pub mod command;
pub mod config;
pub mod downlink;
pub mod error;
pub mod lifecycle;
pub mod moderation;
pub mod names;
pub mod notice;
pub mod presence;
pub mod topic;
pub mod uplink;

pub use command::{ChatMessage, Command, ParseError, Refusal, authorize};
pub use config::{ConfigError, Limits, Routes, RulesConfig};
pub use downlink::{AttrValue, DownlinkMessage, Publish, Qos, downlink_to_publish};
pub use error::MappingError;
pub use lifecycle::{LifecycleEvent, LifecycleKind, OfflineReason};
pub use moderation::{Mode, Policy, PolicyError, RejectReason, Verdict};
pub use names::{ClientId, GroupId, NameError, Role, Roles, RoomId};
pub use notice::{
    ChatNotice, Downlink, MemberStatus, Notice, P2pBody, P2pNotice, RejectedReason, StatusNotice,
    SystemNotice, members_notices, notice_id,
};
pub use presence::{Applied, ChannelState, ClientPresence, Offline, Transition};
pub use topic::{Parent, SubTopic, Topic, TopicError};
pub use uplink::{
    BackendMessage, Encoding, Routed, UplinkRecord, map_uplink_body, uplink_to_backend,
};
