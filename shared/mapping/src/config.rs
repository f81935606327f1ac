//! The rules configuration: which parent topics are uplink (client -> backend), which are
//! downlink (backend -> client), where each uplink parent is routed, and the size limits.
//!
//! Built from plain strings (the shell reads them from the environment) and validated once:
//! a downlink parent that is also an uplink parent is refused (the loop guard of §2: the
//! backend would consume its own output forever).

use std::collections::BTreeMap;

use crate::topic::{DEFAULT_TOPIC_MAX_CHARS, Parent, TopicError};

/// Default payload limit, in bytes (§3: 64 KiB).
pub const DEFAULT_PAYLOAD_MAX_BYTES: usize = 64 * 1024;

/// Why a rules configuration was refused. The messages name what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// A list that must not be empty was empty.
    #[error("no {what} configured")]
    Empty {
        /// What is missing.
        what: &'static str,
    },
    /// A parent topic that is not a valid name.
    #[error("{0}")]
    Parent(#[from] TopicError),
    /// The same parent is both uplink and downlink.
    #[error(
        "parent topic {parent:?} is both an uplink and a downlink parent: the backend would consume its own output in an endless loop (§2); use different parents, e.g. roomSend for uplink and room for downlink"
    )]
    Loop {
        /// The shared parent.
        parent: String,
    },
    /// A parent listed twice.
    #[error("parent topic {parent:?} is listed twice")]
    Duplicate {
        /// The repeated parent.
        parent: String,
    },
    /// A route entry that is not `parent=queue`.
    #[error("route {entry:?} must be written <parentTopic>=<queueUrl>")]
    RouteSyntax {
        /// The entry as given.
        entry: String,
    },
    /// A route for a parent that is not an uplink parent.
    #[error("route for {parent:?}, which is not an uplink parent")]
    RouteNotUplink {
        /// The routed parent.
        parent: String,
    },
    /// An uplink parent without a route.
    #[error("uplink parent {parent:?} has no route to a backend queue")]
    Unrouted {
        /// The unrouted parent.
        parent: String,
    },
    /// A limit of zero.
    #[error("{what} must be greater than zero")]
    ZeroLimit {
        /// Which limit.
        what: &'static str,
    },
}

/// Size limits of §3, both configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest `parent + sub-topic`, in characters.
    pub topic_max_chars: usize,
    /// Largest payload, in bytes.
    pub payload_max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            topic_max_chars: DEFAULT_TOPIC_MAX_CHARS,
            payload_max_bytes: DEFAULT_PAYLOAD_MAX_BYTES,
        }
    }
}

impl Limits {
    /// Validates limits (both must be positive).
    pub fn new(topic_max_chars: usize, payload_max_bytes: usize) -> Result<Self, RulesError> {
        if topic_max_chars == 0 {
            return Err(RulesError::ZeroLimit {
                what: "the topic length limit",
            });
        }
        if payload_max_bytes == 0 {
            return Err(RulesError::ZeroLimit {
                what: "the payload size limit",
            });
        }
        Ok(Self {
            topic_max_chars,
            payload_max_bytes,
        })
    }
}

/// Uplink and downlink parents plus limits, with the loop guard enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesConfig {
    uplink: Vec<Parent>,
    downlink: Vec<Parent>,
    /// The size limits.
    pub limits: Limits,
}

/// Parses a comma-separated list of parent topics (`"roomSend, other"`).
pub fn parse_parents(list: &str) -> Result<Vec<Parent>, RulesError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Parent::parse(s).map_err(RulesError::from))
        .collect()
}

fn check_distinct(parents: &[Parent]) -> Result<(), RulesError> {
    for (i, p) in parents.iter().enumerate() {
        if parents[..i].contains(p) {
            return Err(RulesError::Duplicate {
                parent: p.to_string(),
            });
        }
    }
    Ok(())
}

impl RulesConfig {
    /// Validates a configuration. The first downlink parent is the default of §4.3.
    pub fn new(
        uplink: Vec<Parent>,
        downlink: Vec<Parent>,
        limits: Limits,
    ) -> Result<Self, RulesError> {
        if uplink.is_empty() {
            return Err(RulesError::Empty {
                what: "uplink parent topics",
            });
        }
        if downlink.is_empty() {
            return Err(RulesError::Empty {
                what: "downlink parent topics",
            });
        }
        check_distinct(&uplink)?;
        check_distinct(&downlink)?;
        if let Some(p) = downlink.iter().find(|p| uplink.contains(p)) {
            return Err(RulesError::Loop {
                parent: p.to_string(),
            });
        }
        Ok(Self {
            uplink,
            downlink,
            limits,
        })
    }

    /// Whether `parent` is an uplink parent.
    pub fn is_uplink(&self, parent: &Parent) -> bool {
        self.uplink.contains(parent)
    }

    /// Whether `parent` is a downlink parent.
    pub fn is_downlink(&self, parent: &Parent) -> bool {
        self.downlink.contains(parent)
    }

    /// The uplink parents.
    pub fn uplink(&self) -> &[Parent] {
        &self.uplink
    }

    /// The downlink parents; the first is the default.
    pub fn downlink(&self) -> &[Parent] {
        &self.downlink
    }

    /// The default downlink parent (§4.3).
    pub fn default_downlink(&self) -> &Parent {
        // `new` refuses an empty downlink list.
        &self.downlink[0]
    }
}

/// Where each uplink parent's records go: uplink parent -> backend queue (URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes(BTreeMap<Parent, String>);

impl Routes {
    /// Parses `parent=queue,parent=queue` and checks it against the rules: every uplink parent
    /// has exactly one route, and only uplink parents are routed.
    pub fn parse(spec: &str, rules: &RulesConfig) -> Result<Self, RulesError> {
        let mut map = BTreeMap::new();
        for entry in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (parent, queue) = entry
                .split_once('=')
                .map(|(p, q)| (p.trim(), q.trim()))
                .filter(|(p, q)| !p.is_empty() && !q.is_empty())
                .ok_or_else(|| RulesError::RouteSyntax {
                    entry: entry.to_owned(),
                })?;
            let parent = Parent::parse(parent)?;
            if !rules.is_uplink(&parent) {
                return Err(RulesError::RouteNotUplink {
                    parent: parent.to_string(),
                });
            }
            if map.insert(parent.clone(), queue.to_owned()).is_some() {
                return Err(RulesError::Duplicate {
                    parent: parent.to_string(),
                });
            }
        }
        if let Some(p) = rules.uplink().iter().find(|p| !map.contains_key(*p)) {
            return Err(RulesError::Unrouted {
                parent: p.to_string(),
            });
        }
        Ok(Self(map))
    }

    /// The queue for an uplink parent.
    pub fn queue_for(&self, parent: &Parent) -> Option<&str> {
        self.0.get(parent).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parents(s: &str) -> Vec<Parent> {
        parse_parents(s).unwrap()
    }

    #[test]
    fn a_downlink_parent_that_is_also_uplink_is_refused() {
        let err = RulesConfig::new(
            parents("roomSend"),
            parents("room,roomSend"),
            Limits::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            RulesError::Loop {
                parent: "roomSend".into()
            }
        );
        assert!(err.to_string().contains("endless loop"));
    }

    #[test]
    fn the_first_downlink_parent_is_the_default() {
        let rules = RulesConfig::new(
            parents("roomSend"),
            parents("room, alerts"),
            Limits::default(),
        )
        .unwrap();
        assert_eq!(rules.default_downlink().as_str(), "room");
        assert!(rules.is_downlink(&Parent::parse("alerts").unwrap()));
        assert!(rules.is_uplink(&Parent::parse("roomSend").unwrap()));
    }

    #[test]
    fn empty_duplicate_and_invalid_parents_are_refused() {
        assert!(matches!(
            RulesConfig::new(vec![], parents("room"), Limits::default()),
            Err(RulesError::Empty { .. })
        ));
        assert!(matches!(
            RulesConfig::new(parents("a,a"), parents("room"), Limits::default()),
            Err(RulesError::Duplicate { .. })
        ));
        assert!(matches!(
            parse_parents("room/x"),
            Err(RulesError::Parent(_))
        ));
        assert!(matches!(parse_parents("room+"), Err(RulesError::Parent(_))));
        assert!(matches!(
            Limits::new(0, 1),
            Err(RulesError::ZeroLimit { .. })
        ));
    }

    #[test]
    fn routes_cover_exactly_the_uplink_parents() {
        let rules = RulesConfig::new(
            parents("roomSend,telemetry"),
            parents("room"),
            Limits::default(),
        )
        .unwrap();
        let routes =
            Routes::parse("roomSend=http://q/backend, telemetry=http://q/t", &rules).unwrap();
        assert_eq!(
            routes.queue_for(&Parent::parse("telemetry").unwrap()),
            Some("http://q/t")
        );
        assert!(matches!(
            Routes::parse("roomSend=http://q/backend", &rules),
            Err(RulesError::Unrouted { .. })
        ));
        assert!(matches!(
            Routes::parse("roomSend=a,telemetry=b,room=c", &rules),
            Err(RulesError::RouteNotUplink { .. })
        ));
        assert!(matches!(
            Routes::parse("roomSend", &rules),
            Err(RulesError::RouteSyntax { .. })
        ));
    }
}
