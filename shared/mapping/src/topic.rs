//! The topic model of §3: a parent topic plus a sub-topic, leading-slash normalisation,
//! level validation, the length limit, and the classroom's sub-topics (chat, P2P, status,
//! system) built from validated names so they cannot be injected into.

use std::fmt;

use serde::Serialize;

use crate::names::{ClientId, NameError, ROOM_ID_MAX_CHARS, RoomId, check_resource_name};

/// Default limit on `parent + sub-topic`, in characters (§3).
pub const DEFAULT_TOPIC_MAX_CHARS: usize = 64;

/// Why a topic was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// No sub-topic at all (`""` or `"/"`).
    #[error("the sub-topic is empty")]
    EmptySubTopic,
    /// Two slashes in a row, or a trailing slash.
    #[error("topic {topic:?} has an empty level at level {level}")]
    EmptyLevel {
        /// The topic as given.
        topic: String,
        /// 1-based level index.
        level: usize,
    },
    /// A wildcard or NUL inside a level of a topic that is published.
    #[error("topic {topic:?} contains {ch:?}, which is not allowed in a published topic")]
    ForbiddenChar {
        /// The topic as given.
        topic: String,
        /// The offending character.
        ch: char,
    },
    /// A parent topic that is not a resource name.
    #[error("parent topic is invalid: {0}")]
    Parent(NameError),
    /// `parent + sub-topic` is longer than the limit.
    #[error("topic {topic:?} is {len} characters long, the limit is {max}")]
    TooLong {
        /// The full topic.
        topic: String,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A topic with only a parent and no sub-topic.
    #[error("topic {topic:?} has no sub-topic after its parent")]
    NoSubTopic {
        /// The topic as given.
        topic: String,
    },
    /// A `/p2p/...` sub-topic whose target is not a valid client ID.
    #[error("P2P sub-topic {sub:?} must be /p2p/<clientId>: {reason}")]
    P2pTarget {
        /// The sub-topic as given.
        sub: String,
        /// What is wrong with the target.
        reason: String,
    },
    /// A `/message/...` sub-topic whose room is not a valid room ID.
    #[error("chat sub-topic {sub:?} must be /message/<roomId>: {reason}")]
    Room {
        /// The sub-topic as given.
        sub: String,
        /// What is wrong with the room.
        reason: String,
    },
}

/// A parent topic (first level, e.g. `roomSend` or `room`): a resource name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct Parent(String);

impl Parent {
    /// Validates a parent topic.
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        check_resource_name("parent topic", s, ROOM_ID_MAX_CHARS).map_err(TopicError::Parent)?;
        Ok(Self(s.to_owned()))
    }

    /// The parent as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Parent> for String {
    fn from(p: Parent) -> String {
        p.0
    }
}

impl fmt::Display for Parent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sub-topic, normalised to start with `/` (§3: `/message/1` and `message/1` are the same),
/// with every level non-empty and free of `+`, `#` and NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct SubTopic(String);

impl From<SubTopic> for String {
    fn from(s: SubTopic) -> String {
        s.0
    }
}

impl fmt::Display for SubTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl SubTopic {
    /// Normalises and validates a sub-topic written with or without its leading slash.
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        let body = s.strip_prefix('/').unwrap_or(s);
        if body.is_empty() {
            return Err(TopicError::EmptySubTopic);
        }
        for (i, level) in body.split('/').enumerate() {
            if level.is_empty() {
                return Err(TopicError::EmptyLevel {
                    topic: s.to_owned(),
                    level: i + 1,
                });
            }
            if let Some(ch) = level.chars().find(|c| matches!(c, '+' | '#' | '\0')) {
                return Err(TopicError::ForbiddenChar {
                    topic: s.to_owned(),
                    ch,
                });
            }
        }
        Ok(Self(format!("/{body}")))
    }

    /// The sub-topic with its leading slash, e.g. `/message/1`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its levels, e.g. `["message", "1"]`.
    pub fn levels(&self) -> impl Iterator<Item = &str> {
        self.0[1..].split('/')
    }

    /// Its first level (`message`, `command`, `p2p`, ...): the `tag` of §4.2.
    pub fn first_level(&self) -> &str {
        self.levels().next().unwrap_or_default()
    }

    /// `/p2p/<client>`: the P2P sub-topic that only `client` may read.
    pub fn p2p(client: &ClientId) -> Self {
        Self(format!("/p2p/{client}"))
    }

    /// `/message/<room>`: the room's chat.
    pub fn room_message(room: &RoomId) -> Self {
        Self(format!("/message/{room}"))
    }

    /// `/status/<room>`: member online/offline notices of the room.
    pub fn room_status(room: &RoomId) -> Self {
        Self(format!("/status/{room}"))
    }

    /// `/system`: system notices to everyone.
    pub fn system() -> Self {
        Self("/system".to_owned())
    }

    /// Checks the classroom's conventions on top of the generic level rules: `/p2p/<clientId>`
    /// must name a valid client, `/message/<roomId>` a valid room. Returns the P2P target.
    pub fn check_conventions(&self) -> Result<Option<ClientId>, TopicError> {
        let levels: Vec<&str> = self.levels().collect();
        match levels.as_slice() {
            ["p2p", target] => {
                ClientId::parse(target)
                    .map(Some)
                    .map_err(|e| TopicError::P2pTarget {
                        sub: self.0.clone(),
                        reason: e.to_string(),
                    })
            }
            ["p2p", ..] => Err(TopicError::P2pTarget {
                sub: self.0.clone(),
                reason: "expected exactly one level after /p2p".to_owned(),
            }),
            ["message", room] => RoomId::parse(room)
                .map(|_| None)
                .map_err(|e| TopicError::Room {
                    sub: self.0.clone(),
                    reason: e.to_string(),
                }),
            ["message", ..] => Err(TopicError::Room {
                sub: self.0.clone(),
                reason: "expected exactly one level after /message".to_owned(),
            }),
            _ => Ok(None),
        }
    }
}

/// A full topic `parent + sub-topic`, within the length limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Topic {
    parent: Parent,
    sub: SubTopic,
}

impl Topic {
    /// Joins a parent and a sub-topic, refusing a result over `max_chars` characters.
    pub fn join(parent: Parent, sub: SubTopic, max_chars: usize) -> Result<Self, TopicError> {
        let topic = Self { parent, sub };
        let len = topic.parent.0.chars().count() + topic.sub.0.chars().count();
        if len > max_chars {
            return Err(TopicError::TooLong {
                topic: topic.to_string(),
                len,
                max: max_chars,
            });
        }
        Ok(topic)
    }

    /// Splits a full published topic into its parent (first level) and sub-topic.
    pub fn parse(s: &str, max_chars: usize) -> Result<Self, TopicError> {
        let (parent, sub) = s.split_once('/').ok_or_else(|| TopicError::NoSubTopic {
            topic: s.to_owned(),
        })?;
        if sub.is_empty() {
            return Err(TopicError::NoSubTopic {
                topic: s.to_owned(),
            });
        }
        if sub.starts_with('/') {
            // `parent//x`: normalising the sub-topic's leading slash would hide this empty level.
            return Err(TopicError::EmptyLevel {
                topic: s.to_owned(),
                level: 2,
            });
        }
        let sub = SubTopic::parse(sub).map_err(|e| match e {
            // Report empty levels against the whole topic, counting the parent as level 1.
            TopicError::EmptyLevel { level, .. } => TopicError::EmptyLevel {
                topic: s.to_owned(),
                level: level + 1,
            },
            TopicError::ForbiddenChar { ch, .. } => TopicError::ForbiddenChar {
                topic: s.to_owned(),
                ch,
            },
            other => other,
        })?;
        Self::join(Parent::parse(parent)?, sub, max_chars)
    }

    /// The parent topic.
    pub fn parent(&self) -> &Parent {
        &self.parent
    }

    /// The sub-topic.
    pub fn sub(&self) -> &SubTopic {
        &self.sub
    }

    /// The parent and the sub-topic, moved out.
    pub fn into_parts(self) -> (Parent, SubTopic) {
        (self.parent, self.sub)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.parent, self.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sub(s: &str) -> SubTopic {
        SubTopic::parse(s).unwrap()
    }

    #[test]
    fn leading_slash_is_normalised() {
        assert_eq!(sub("/message/1"), sub("message/1"));
        assert_eq!(sub("message/1").as_str(), "/message/1");
        assert_eq!(sub("message/1").first_level(), "message");
    }

    #[test]
    fn empty_levels_and_wildcards_are_refused() {
        assert_eq!(SubTopic::parse("/"), Err(TopicError::EmptySubTopic));
        assert_eq!(SubTopic::parse(""), Err(TopicError::EmptySubTopic));
        assert!(matches!(
            SubTopic::parse("a//b"),
            Err(TopicError::EmptyLevel { level: 2, .. })
        ));
        assert!(matches!(
            SubTopic::parse("a/"),
            Err(TopicError::EmptyLevel { level: 2, .. })
        ));
        for bad in ["message/+", "message/#", "p+2p", "a/\0"] {
            assert!(
                matches!(SubTopic::parse(bad), Err(TopicError::ForbiddenChar { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_length_limit_counts_parent_and_sub_topic() {
        let parent = Parent::parse("room").unwrap();
        let exact = sub(&format!("/{}", "x".repeat(59)));
        assert!(Topic::join(parent.clone(), exact, 64).is_ok());
        let over = sub(&format!("/{}", "x".repeat(60)));
        let err = Topic::join(parent.clone(), over.clone(), 64).unwrap_err();
        assert!(matches!(
            err,
            TopicError::TooLong {
                len: 65,
                max: 64,
                ..
            }
        ));
        assert!(
            Topic::join(parent, over, 256).is_ok(),
            "the limit is configurable"
        );
    }

    #[test]
    fn full_topics_split_at_the_first_level() {
        let t = Topic::parse("roomSend/message", 64).unwrap();
        assert_eq!(t.parent().as_str(), "roomSend");
        assert_eq!(t.sub().as_str(), "/message");
        assert_eq!(t.to_string(), "roomSend/message");
        assert!(matches!(
            Topic::parse("roomSend", 64),
            Err(TopicError::NoSubTopic { .. })
        ));
        assert!(matches!(
            Topic::parse("roomSend/", 64),
            Err(TopicError::NoSubTopic { .. })
        ));
        assert!(matches!(
            Topic::parse("/message", 64),
            Err(TopicError::Parent(_))
        ));
        assert!(matches!(
            Topic::parse("roomSend//x", 64),
            Err(TopicError::EmptyLevel { level: 2, .. })
        ));
    }

    #[test]
    fn p2p_topics_round_trip_and_refuse_bad_targets() {
        let target = ClientId::parse("GID_student@@@002").unwrap();
        let p2p = SubTopic::p2p(&target);
        assert_eq!(p2p.as_str(), "/p2p/GID_student@@@002");
        assert_eq!(p2p.check_conventions().unwrap(), Some(target));
        for bad in [
            "/p2p/GID_student@@@002/x",
            "/p2p/nobody",
            "/p2p/GID_student@@@0 2",
        ] {
            assert!(
                matches!(
                    sub(bad).check_conventions(),
                    Err(TopicError::P2pTarget { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            sub("/message/1/2").check_conventions(),
            Err(TopicError::Room { .. })
        ));
        assert_eq!(sub("/message/1").check_conventions(), Ok(None));
        assert_eq!(sub("/system").check_conventions(), Ok(None));
    }

    proptest! {
        #[test]
        fn a_valid_sub_topic_has_no_empty_level_or_wildcard(s in "[a-z/+#\0]{0,12}") {
            if let Ok(t) = SubTopic::parse(&s) {
                prop_assert!(t.as_str().starts_with('/'));
                prop_assert!(t.levels().all(|l| !l.is_empty() && !l.contains(['+', '#', '\0'])));
                prop_assert_eq!(SubTopic::parse(t.as_str()), Ok(t.clone()));
            }
        }
    }
}
