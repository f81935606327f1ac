//! Names that are spliced into topics: client IDs, group IDs, room IDs, and the roles that
//! come from a client's group (§3).
//!
//! Every type here is validated on construction, so a value of the type can be put into a
//! topic level without any risk of topic injection (`/`, `+`, `#`, NUL or invisible
//! characters cannot appear in it).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The separator between a client's Group ID and its Device ID.
pub const CLIENT_ID_SEPARATOR: &str = "@@@";
/// Longest client ID the service accepts, in characters (§3).
pub const CLIENT_ID_MAX_CHARS: usize = 64;
/// Shortest Group ID, in characters, prefix included (§3).
pub const GROUP_ID_MIN_CHARS: usize = 7;
/// Longest Group ID, in characters (§3).
pub const GROUP_ID_MAX_CHARS: usize = 64;
/// Longest room ID, in characters.
pub const ROOM_ID_MAX_CHARS: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name was empty.
    #[error("{what} is empty")]
    Empty {
        /// Which kind of name.
        what: &'static str,
    },
    /// The name is longer than its limit.
    #[error("{what} is {len} characters long, the limit is {max}")]
    TooLong {
        /// Which kind of name.
        what: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name is shorter than its limit.
    #[error("{what} is {len} characters long, the minimum is {min}")]
    TooShort {
        /// Which kind of name.
        what: &'static str,
        /// Its length in characters.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// The name holds a character outside `[0-9A-Za-z_-]`.
    #[error("{what} contains {ch:?} at character {position}; only [0-9A-Za-z_-] is allowed")]
    InvalidChar {
        /// Which kind of name.
        what: &'static str,
        /// The offending character.
        ch: char,
        /// Its character index.
        position: usize,
    },
    /// A Group ID that does not start with `GID_` or `GID-`.
    #[error("group ID {group:?} must start with \"GID_\" or \"GID-\"")]
    GroupPrefix {
        /// The group given.
        group: String,
    },
    /// A client ID without exactly one `@@@`.
    #[error("client ID {client:?} must be <GroupID>@@@<DeviceID>")]
    Separator {
        /// The client ID given.
        client: String,
    },
}

/// Checks that `value` is a resource name: non-empty, only `[0-9A-Za-z_-]`, at most `max` chars.
pub(crate) fn check_resource_name(
    what: &'static str,
    value: &str,
    max: usize,
) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { what });
    }
    let mut len = 0;
    for (position, ch) in value.chars().enumerate() {
        if !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '-') {
            return Err(NameError::InvalidChar { what, ch, position });
        }
        len = position + 1;
    }
    if len > max {
        return Err(NameError::TooLong { what, len, max });
    }
    Ok(())
}

/// Implements string conversions and serde for a validated string newtype.
macro_rules! validated_string {
    ($ty:ident) => {
        impl $ty {
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// A Group ID: `GID_` or `GID-` followed by a resource name, 7 to 64 characters (§3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupId(String);

impl GroupId {
    /// Validates a Group ID.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        Self::check(s)?;
        Ok(Self(s.to_owned()))
    }

    /// Checks a Group ID without allocating.
    fn check(s: &str) -> Result<(), NameError> {
        const WHAT: &str = "group ID";
        check_resource_name(WHAT, s, GROUP_ID_MAX_CHARS)?;
        if !(s.starts_with("GID_") || s.starts_with("GID-")) {
            return Err(NameError::GroupPrefix {
                group: s.to_owned(),
            });
        }
        if s.len() < GROUP_ID_MIN_CHARS {
            return Err(NameError::TooShort {
                what: WHAT,
                len: s.len(),
                min: GROUP_ID_MIN_CHARS,
            });
        }
        Ok(())
    }
}
validated_string!(GroupId);

/// A client ID `<GroupID>@@@<DeviceID>`, at most 64 characters, resource-name characters
/// only (§3). Safe to splice into a topic level.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    /// Validates a client ID.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let Some((group, device)) = s.split_once(CLIENT_ID_SEPARATOR) else {
            return Err(NameError::Separator {
                client: s.to_owned(),
            });
        };
        GroupId::check(group)?;
        // The device part may not hold '@' (so the separator is unambiguous): the
        // resource-name check below refuses it.
        check_resource_name("device ID", device, CLIENT_ID_MAX_CHARS)?;
        let len = s.chars().count();
        if len > CLIENT_ID_MAX_CHARS {
            return Err(NameError::TooLong {
                what: "client ID",
                len,
                max: CLIENT_ID_MAX_CHARS,
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// The Group ID part.
    pub fn group(&self) -> &str {
        self.0
            .split_once(CLIENT_ID_SEPARATOR)
            .map_or("", |(group, _)| group)
    }

    /// The Device ID part.
    pub fn device(&self) -> &str {
        self.0
            .split_once(CLIENT_ID_SEPARATOR)
            .map_or("", |(_, device)| device)
    }
}
validated_string!(ClientId);

/// A room ID: a resource name of at most 64 characters. Safe to splice into a topic level.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomId(String);

impl RoomId {
    /// Validates a room ID.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_resource_name("room ID", s, ROOM_ID_MAX_CHARS)?;
        Ok(Self(s.to_owned()))
    }
}
validated_string!(RoomId);

/// What a client may do in the classroom, decided by its group (§3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Member of a teacher group: may mute and unmute students.
    Teacher,
    /// Member of a student group.
    Student,
    /// Any other group: may chat, may not command.
    Other,
}

/// Which groups teach and which learn. Defaults: `GID_teacher` and `GID_student`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    teachers: Vec<GroupId>,
    students: Vec<GroupId>,
}

impl Default for Roles {
    fn default() -> Self {
        Self {
            teachers: vec![GroupId("GID_teacher".to_owned())],
            students: vec![GroupId("GID_student".to_owned())],
        }
    }
}

impl Roles {
    /// Roles from explicit group lists.
    pub fn new(teachers: Vec<GroupId>, students: Vec<GroupId>) -> Self {
        Self { teachers, students }
    }

    /// The role of a client, from its group.
    pub fn role_of(&self, client: &ClientId) -> Role {
        let group = client.group();
        if self.teachers.iter().any(|g| g.as_str() == group) {
            Role::Teacher
        } else if self.students.iter().any(|g| g.as_str() == group) {
            Role::Student
        } else {
            Role::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seeds_client_ids_parse_into_group_and_device() {
        let id = ClientId::parse("GID_student@@@002").unwrap();
        assert_eq!(id.group(), "GID_student");
        assert_eq!(id.device(), "002");
        assert_eq!(id.to_string(), "GID_student@@@002");
    }

    #[test]
    fn client_id_limits_are_enforced() {
        let long_device = "d".repeat(64 - "GID_x@@@".len() + 1);
        let err = ClientId::parse(&format!("GID_xyz@@@{long_device}")).unwrap_err();
        assert!(matches!(err, NameError::TooLong { max: 64, .. }), "{err}");
        let exact = format!("GID_xyz@@@{}", "d".repeat(64 - 10));
        assert_eq!(ClientId::parse(&exact).unwrap().as_str().len(), 64);
        assert!(matches!(
            ClientId::parse("GID_student002").unwrap_err(),
            NameError::Separator { .. }
        ));
        assert!(matches!(
            ClientId::parse("GID_student@@@").unwrap_err(),
            NameError::Empty { .. }
        ));
        assert!(matches!(
            ClientId::parse("GID_student@@@@002").unwrap_err(),
            NameError::InvalidChar { ch: '@', .. }
        ));
        assert!(matches!(
            ClientId::parse("student@@@002").unwrap_err(),
            NameError::GroupPrefix { .. }
        ));
        assert!(matches!(
            ClientId::parse("GID_ab@@@002").unwrap_err(),
            NameError::TooShort { min: 7, .. }
        ));
        assert!(GroupId::parse("GID-abc").is_ok());
    }

    #[test]
    fn injection_and_invisible_characters_are_refused() {
        for bad in [
            "GID_student@@@0/2",
            "GID_student@@@+",
            "GID_student@@@#",
            "GID_student@@@a\u{0}",
            "GID_student@@@a\u{200b}",
            "GID_student@@@a b",
        ] {
            assert!(
                matches!(ClientId::parse(bad), Err(NameError::InvalidChar { .. })),
                "{bad:?} was accepted"
            );
        }
        for bad in ["1/2", "+", "#", "a\u{0}", ""] {
            assert!(RoomId::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn roles_come_from_the_group() {
        let roles = Roles::default();
        let role = |s: &str| roles.role_of(&ClientId::parse(s).unwrap());
        assert_eq!(role("GID_teacher@@@001"), Role::Teacher);
        assert_eq!(role("GID_student@@@001"), Role::Student);
        assert_eq!(role("GID_teacherX@@@001"), Role::Other);
    }

    proptest! {
        #[test]
        fn a_parsed_client_id_never_holds_topic_syntax(s in "\\PC{0,80}") {
            if let Ok(id) = ClientId::parse(&s) {
                prop_assert!(!id.as_str().contains(['/', '+', '#', '\0']));
                prop_assert!(id.as_str().chars().count() <= CLIENT_ID_MAX_CHARS);
            }
        }
    }
}
