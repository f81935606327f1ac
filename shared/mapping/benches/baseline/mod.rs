//! BASELINE, for comparison only: the moderation verdict as it was before issue 14
//! (case and full-width folding only, no NFKC, no confusables, no separator rule), copied
//! from `shared/mapping/src/moderation.rs` so that `make bench-mapping` measures today's
//! and the new verdict in the same run. Not used by any rule; do not edit except to keep it
//! compiling.
#![allow(dead_code)]
use std::borrow::Cow;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use mapping::Refusal;

/// Default limit on a chat message, in characters (`MAX_MESSAGE_CHARS`).
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 500;

/// The character that replaces each character of a banned word.
pub const MASK_CHAR: char = '*';

/// What to do with a message that holds a banned word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Replace each character of each banned word with `*` and deliver.
    Mask,
    /// Refuse the whole message.
    Reject,
}

impl Mode {
    /// From `MODERATION_MODE` (`mask` or `reject`, any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mask" => Some(Self::Mask),
            "reject" => Some(Self::Reject),
            _ => None,
        }
    }
}

/// The decision about one chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver `text` (masked when `masked`).
    Deliver {
        /// The text to deliver.
        text: String,
        /// Whether some banned word was masked.
        masked: bool,
    },
    /// Do not deliver.
    Reject {
        /// Why: [`Refusal::BannedWords`], [`Refusal::TooLong`] or [`Refusal::InvalidMessage`]
        /// (empty or only white space).
        reason: Refusal,
    },
}

/// Why a policy could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WordListError {
    /// The limit is zero.
    #[error("the maximum message length must be at least 1 character")]
    ZeroLimit,
    /// The automaton could not be built (a list far beyond any realistic size).
    #[error("the banned-word automaton could not be built: {0}")]
    Build(#[from] aho_corasick::BuildError),
}

/// Folds one character for matching: ASCII lower case, full-width ASCII forms to ASCII, the
/// ideographic space to a space. Always one character for one character.
#[inline]
pub fn fold_char(c: char) -> char {
    match c {
        'A'..='Z' => c.to_ascii_lowercase(),
        '\u{FF01}'..='\u{FF5E}' => {
            // U+FF01..U+FF5E are U+0021..U+007E shifted by 0xFEE0.
            let ascii = char::from_u32(c as u32 - 0xFEE0).unwrap_or(c);
            ascii.to_ascii_lowercase()
        }
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// Folds a whole string (see [`fold_char`]).
pub fn fold(s: &str) -> String {
    fold_text(s).text.into_owned()
}

/// A text folded for matching.
#[derive(Debug)]
struct Folded<'a> {
    /// The folded text; borrowed when folding changes nothing.
    text: Cow<'a, str>,
    /// Byte offsets in the folded text of the characters that shrank from 3 bytes to 1 (a
    /// full-width form or U+3000 become ASCII), in increasing order. Empty: byte offsets in the
    /// folded text are byte offsets in the original.
    shrunk_at: Vec<usize>,
}

impl Folded<'_> {
    /// Whether byte offsets in the folded text are those of the original.
    fn same_offsets(&self) -> bool {
        self.shrunk_at.is_empty()
    }
}

/// Whether the 3-byte character starting at `bytes[i]` (a lead byte `0xE3` or `0xEF`) is one
/// that [`fold_char`] turns into ASCII: U+3000 (`E3 80 80`) or U+FF01..U+FF5E
/// (`EF BC 81`..`EF BD 9E`).
#[inline]
fn folds_to_ascii(bytes: &[u8], i: usize) -> bool {
    match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
        (0xE3, Some(0x80), Some(0x80)) => true,
        (0xEF, Some(0xBC), Some(&b)) => b >= 0x81,
        (0xEF, Some(0xBD), Some(&b)) => b <= 0x9E,
        _ => false,
    }
}

/// Folds `s` as [`fold_char`] does for each character, without copying what need not change.
fn fold_text(s: &str) -> Folded<'_> {
    let bytes = s.as_bytes();
    let Some(first) =
        (0..bytes.len()).find(|&i| matches!(bytes[i], 0xE3 | 0xEF) && folds_to_ascii(bytes, i))
    else {
        // No full-width form: at most ASCII capitals to lower, one byte for one byte.
        let text = if bytes.iter().any(u8::is_ascii_uppercase) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        };
        return Folded {
            text,
            shrunk_at: Vec::new(),
        };
    };
    let mut out = String::with_capacity(s.len());
    let mut shrunk_at = Vec::new();
    let mut run = 0; // start of the stretch not yet copied
    let mut i = first;
    while i < bytes.len() {
        if matches!(bytes[i], 0xE3 | 0xEF) && folds_to_ascii(bytes, i) {
            out.push_str(&s[run..i]);
            shrunk_at.push(out.len());
            // A 3-byte character from a char boundary: `i + 3` is a boundary too.
            out.extend(s[i..i + 3].chars().map(fold_char));
            i += 3;
            run = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[run..]);
    // Full-width capitals became ASCII capitals above; every capital is lowered here.
    out.make_ascii_lowercase();
    Folded {
        text: Cow::Owned(out),
        shrunk_at,
    }
}

/// Maps byte offsets of the folded text (character boundaries, in increasing order) back to
/// the original: each character that shrank before the offset moved it 2 bytes.
struct OffsetMap<'a> {
    shrunk_at: &'a [usize],
    /// How many of `shrunk_at` lie before the last offset mapped.
    before: usize,
}

impl OffsetMap<'_> {
    fn original_offset(&mut self, folded: usize) -> usize {
        while self
            .shrunk_at
            .get(self.before)
            .is_some_and(|&at| at < folded)
        {
            self.before += 1;
        }
        folded + 2 * self.before
    }
}

/// The moderation policy: banned words, mode and length limit. Build once, use for every
/// message.
#[derive(Debug, Clone)]
pub struct Policy {
    automaton: AhoCorasick,
    mode: Mode,
    max_chars: usize,
    words: usize,
}

impl Policy {
    /// Builds the policy. Words are trimmed; empty words are ignored (an empty pattern would
    /// match everywhere); duplicates after folding are harmless.
    pub fn new<I, S>(words: I, mode: Mode, max_chars: usize) -> Result<Self, WordListError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        if max_chars == 0 {
            return Err(WordListError::ZeroLimit);
        }
        let words: Vec<S> = words.into_iter().collect();
        // Most words need no folding (lower-case English, Chinese): borrowed, not copied.
        let mut patterns: Vec<Cow<'_, str>> = words
            .iter()
            .map(|w| fold_text(w.as_ref().trim()).text)
            .filter(|w| !w.is_empty())
            .collect();
        let count = patterns.len();
        // In descending order the trie builder finds each pattern's next byte at the head of
        // its state's sorted transition list instead of walking the list: about 15% off the
        // build of a long list, for a sort that costs far less. Under leftmost-longest
        // semantics the order of the patterns does not change any match's span (the pattern
        // IDs, which we do not use, differ), and a duplicate can go.
        patterns.sort_unstable_by(|a, b| b.cmp(a));
        patterns.dedup();
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            // A DFA for a 10,000-word list costs far more than the 20 ms build budget; the
            // contiguous NFA scans a 200-byte message well within the verdict budget.
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(patterns.iter().map(|p| p.as_bytes()))?;
        Ok(Self {
            automaton,
            mode,
            max_chars,
            words: count,
        })
    }

    /// Builds the policy from `BANNED_WORDS` (comma-separated, Chinese `，` also accepted).
    pub fn from_list(list: &str, mode: Mode, max_chars: usize) -> Result<Self, WordListError> {
        Self::new(list.split([',', '，']), mode, max_chars)
    }

    /// The number of banned words.
    pub fn len(&self) -> usize {
        self.words
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.words == 0
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The length limit, characters.
    pub fn max_chars(&self) -> usize {
        self.max_chars
    }

    /// The verdict on one chat message.
    pub fn verdict(&self, text: &str) -> Verdict {
        if text.trim().is_empty() {
            return Verdict::Reject {
                reason: Refusal::InvalidMessage,
            };
        }
        // A text of at most `max_chars` bytes has at most as many characters; otherwise
        // counting stops at the limit, so a huge message costs no more than a long one.
        if text.len() > self.max_chars && text.chars().nth(self.max_chars).is_some() {
            return Verdict::Reject {
                reason: Refusal::TooLong,
            };
        }
        if self.words == 0 {
            return Verdict::Deliver {
                text: text.to_owned(),
                masked: false,
            };
        }
        let folded = fold_text(text);
        match self.mode {
            Mode::Reject => {
                if self.automaton.is_match(folded.text.as_ref()) {
                    Verdict::Reject {
                        reason: Refusal::BannedWords,
                    }
                } else {
                    Verdict::Deliver {
                        text: text.to_owned(),
                        masked: false,
                    }
                }
            }
            Mode::Mask => match mask(&self.automaton, text, &folded) {
                Some(masked) => Verdict::Deliver {
                    text: masked,
                    masked: true,
                },
                None => Verdict::Deliver {
                    text: text.to_owned(),
                    masked: false,
                },
            },
        }
    }
}

/// `text` with every character of every match in `folded` replaced by [`MASK_CHAR`], or
/// `None` when nothing matches.
fn mask(automaton: &AhoCorasick, text: &str, folded: &Folded<'_>) -> Option<String> {
    let haystack = folded.text.as_ref();
    let mut matches = automaton.find_iter(haystack).peekable();
    matches.peek()?;
    let mut out = String::with_capacity(text.len());
    let mut map = OffsetMap {
        shrunk_at: &folded.shrunk_at,
        before: 0,
    };
    let mut copied = 0; // end of the part of `text` already in `out`
    for m in matches {
        let (start, end) = if folded.same_offsets() {
            (m.start(), m.end())
        } else {
            (map.original_offset(m.start()), map.original_offset(m.end()))
        };
        out.push_str(&text[copied..start]);
        // One folded character per original character: as many stars as characters typed.
        let stars = haystack[m.start()..m.end()].chars().count();
        out.extend(std::iter::repeat_n(MASK_CHAR, stars));
        copied = end;
    }
    out.push_str(&text[copied..]);
    Some(out)
}
