//! MQTT topic filters as a token grants them, and the two questions every broker asks of
//! them: does a filter match a topic (publish, delivery), and does a granted filter contain a
//! requested one (subscribe).

use std::fmt;

/// Longest filter, in bytes (AWS IoT Core's topic limit).
pub const MAX_FILTER_BYTES: usize = 256;

/// Why a topic filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Empty, or longer than [`MAX_FILTER_BYTES`].
    #[error("a topic filter must be 1 to {MAX_FILTER_BYTES} bytes, not {0}")]
    Length(usize),
    /// An empty level (`a//b`, a leading or trailing `/`).
    #[error("topic filter {0:?} has an empty level")]
    EmptyLevel(String),
    /// `+` or `#` sharing a level with other characters, or `#` before the last level.
    #[error("topic filter {0:?}: `+` must fill a whole level and `#` must be the whole last level")]
    Wildcard(String),
    /// A character a token may not grant: `$` (broker topics), `*` and `?` (wildcards in IoT
    /// policies, so they could not be granted literally), NUL and other control characters.
    #[error(
        "topic filter {filter:?} contains {found:?}: `$`, `*`, `?` and control characters cannot be granted"
    )]
    Character {
        /// The filter.
        filter: String,
        /// The first character refused.
        found: char,
    },
}

/// A valid MQTT topic filter that a token may grant.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Filter(String);

impl Filter {
    /// Parses a filter: levels separated by `/`, none empty; `+` alone in a level, `#` alone in
    /// the last level; no `$`, `*`, `?` or control characters.
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        if s.is_empty() || s.len() > MAX_FILTER_BYTES {
            return Err(FilterError::Length(s.len()));
        }
        if let Some(found) = s
            .chars()
            .find(|c| matches!(c, '$' | '*' | '?') || c.is_control())
        {
            return Err(FilterError::Character {
                filter: s.to_owned(),
                found,
            });
        }
        let levels: Vec<&str> = s.split('/').collect();
        for (i, level) in levels.iter().enumerate() {
            if level.is_empty() {
                return Err(FilterError::EmptyLevel(s.to_owned()));
            }
            let wild = level.contains(['+', '#']);
            let ok = !wild || *level == "+" || (*level == "#" && i + 1 == levels.len());
            if !ok {
                return Err(FilterError::Wildcard(s.to_owned()));
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The filter text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the filter has a wildcard.
    pub fn is_wildcard(&self) -> bool {
        self.0.contains(['+', '#'])
    }

    /// Whether the filter matches the topic `topic` (MQTT 3.1.1 §4.7: `+` one level, `#` any
    /// number of levels including none, so `a/#` matches `a`; nothing here matches a topic
    /// starting with `$`).
    pub fn matches(&self, topic: &str) -> bool {
        if topic.starts_with('$') {
            return false;
        }
        let mut topic_levels = topic.split('/');
        for level in self.0.split('/') {
            if level == "#" {
                return true;
            }
            match topic_levels.next() {
                Some(t) if level == "+" || level == t => {}
                _ => return false,
            }
        }
        topic_levels.next().is_none()
    }

    /// Whether every topic `other` matches is matched by `self`: a subscription to `other` is
    /// within a grant of `self`. `room/#` contains `room/message/1` and `room/+`;
    /// `room/message/1` contains neither `room/message/#` nor `room/message/+`.
    pub fn contains(&self, other: &Filter) -> bool {
        let mut theirs = other.0.split('/');
        for mine in self.0.split('/') {
            if mine == "#" {
                return true;
            }
            match theirs.next() {
                None | Some("#") => return false,
                Some(t) if mine == "+" || mine == t => {}
                Some(_) => return false,
            }
        }
        theirs.next().is_none()
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f(s: &str) -> Filter {
        Filter::parse(s).unwrap()
    }

    #[test]
    fn valid_filters_parse_and_invalid_ones_say_why() {
        for ok in [
            "room/message/1",
            "room/+",
            "room/#",
            "#",
            "+",
            "+/x/#",
            "a-b_c/é",
        ] {
            assert!(Filter::parse(ok).is_ok(), "{ok}");
        }
        for (bad, want) in [
            ("", "1 to 256"),
            ("a//b", "empty level"),
            ("/a", "empty level"),
            ("a/", "empty level"),
            ("a/b+", "whole level"),
            ("a/#/b", "whole level"),
            ("a#", "whole level"),
            ("$SYS/#", "`$`"),
            ("$aws/events/#", "`$`"),
            ("room/*", "`*`"),
            ("room/?", "`*`"),
            ("room/\u{0}", "control"),
            ("room/\n", "control"),
        ] {
            let e = Filter::parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
        assert!(Filter::parse(&"a".repeat(256)).is_ok());
        assert!(Filter::parse(&"a".repeat(257)).is_err());
    }

    #[test]
    fn matching_follows_mqtt() {
        assert!(f("room/message/1").matches("room/message/1"));
        assert!(!f("room/message/1").matches("room/message/12"));
        assert!(!f("room/message/1").matches("room/message/1/x"));
        assert!(!f("room/message/1").matches("room/message"));
        assert!(f("room/+/1").matches("room/message/1"));
        assert!(!f("room/+").matches("room/message/1"));
        assert!(f("room/#").matches("room"));
        assert!(f("room/#").matches("room/a/b/c"));
        assert!(!f("room/#").matches("roomx/a"));
        assert!(f("#").matches("a"));
        assert!(!f("#").matches("$SYS/x"));
        assert!(!f("+/x").matches("$aws/x"));
    }

    #[test]
    fn containment_follows_mqtt() {
        assert!(f("room/#").contains(&f("room/message/1")));
        assert!(f("room/#").contains(&f("room/+")));
        assert!(f("room/#").contains(&f("room/#")));
        assert!(f("room/#").contains(&f("room")));
        assert!(f("room/+/1").contains(&f("room/message/1")));
        assert!(f("room/message/1").contains(&f("room/message/1")));
        assert!(!f("room/message/1").contains(&f("room/message/#")));
        assert!(!f("room/message/1").contains(&f("room/message/+")));
        assert!(!f("room/message/1").contains(&f("room/#")));
        assert!(!f("room/+").contains(&f("room/#")));
        assert!(!f("room/+").contains(&f("room")));
        assert!(!f("room/message").contains(&f("room/message/1")));
        assert!(!f("a/b").contains(&f("a")));
    }

    // The reference: a filter is a pattern over levels; enumerate every topic over a small
    // alphabet (the filters' literals plus one level no filter names) and compare.
    const LEVELS: [&str; 4] = ["a", "b", "c", "z"];

    fn naive_match(filter: &[&str], topic: &[&str]) -> bool {
        match (filter.split_first(), topic.split_first()) {
            (None, None) => true,
            (Some((&"#", _)), _) => true,
            (Some((l, fr)), Some((t, tr))) => (*l == "+" || l == t) && naive_match(fr, tr),
            _ => false,
        }
    }

    fn topics(max_depth: usize) -> Vec<Vec<&'static str>> {
        let mut all: Vec<Vec<&str>> = LEVELS.iter().map(|l| vec![*l]).collect();
        let mut frontier = all.clone();
        for _ in 1..max_depth {
            let next: Vec<Vec<&str>> = frontier
                .iter()
                .flat_map(|t| {
                    LEVELS.iter().map(move |l| {
                        let mut u = t.clone();
                        u.push(l);
                        u
                    })
                })
                .collect();
            all.extend(next.iter().cloned());
            frontier = next;
        }
        all
    }

    fn filter_strategy() -> impl Strategy<Value = String> {
        let level = prop::sample::select(vec!["a", "b", "c", "+"]);
        (prop::collection::vec(level, 1..=3), any::<bool>()).prop_map(|(mut ls, hash)| {
            if hash {
                ls.push("#");
            }
            ls.join("/")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn matches_agrees_with_the_naive_reference(filter in filter_strategy()) {
            let fl = f(&filter);
            let levels: Vec<&str> = filter.split('/').collect();
            for t in topics(5) {
                prop_assert_eq!(fl.matches(&t.join("/")), naive_match(&levels, &t), "{} vs {:?}", filter, t);
            }
        }

        #[test]
        fn contains_means_every_matched_topic_is_granted(g in filter_strategy(), r in filter_strategy()) {
            let (gf, rf) = (f(&g), f(&r));
            let all = topics(5);
            let implied = all.iter().map(|t| t.join("/")).all(|t| !rf.matches(&t) || gf.matches(&t));
            prop_assert_eq!(gf.contains(&rf), implied, "grant {} request {}", g, r);
        }
    }
}
