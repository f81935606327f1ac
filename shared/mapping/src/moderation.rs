//! The chat moderation policy (§5): a length limit and a banned-word list (Chinese and
//! English), case- and width-insensitive, that masks or rejects.
//!
//! Matching runs on a folded copy of the text: ASCII letters are lower-cased and the
//! full-width forms U+FF01..U+FF5E (`Ａ`, `ｂ`, `１`, `！`) become their ASCII twins, the
//! ideographic space U+3000 a space. The patterns are folded the same way when the automaton is
//! built. Folding maps every character to exactly one character, so a match's character
//! positions in the folded text are the positions of the original characters, and masking
//! replaces the characters the user actually typed.
//!
//! The automaton (`aho_corasick`, leftmost-longest) is built once per container; a verdict is a
//! scan of the folded message.
//!
//! # Cost
//! The verdict is on the path of every chat message, so the folded copy is cheap: a message
//! with nothing to fold (lower-case ASCII, Chinese) is scanned as it is; one with only ASCII
//! capitals is lower-cased in a single pass (byte offsets unchanged); only a message with
//! full-width forms is rebuilt, copying the stretches between them as slices. Masking copies
//! the unmatched stretches of the original as slices too. Byte offsets in the folded text equal
//! those in the original unless a full-width form (3 bytes) became ASCII (1 byte); the fold
//! notes where that happened, and only then are a match's offsets shifted back.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use serde::Serialize;

use crate::refusal::Refusal;

/// Default limit on a chat message, in characters (`MAX_MESSAGE_CHARS`).
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 500;

/// The character that replaces each character of a banned word.
pub const MASK_CHAR: char = '*';

/// What to do with a message that holds a banned word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "verdict")]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(words: &[&str]) -> Policy {
        Policy::new(words, Mode::Mask, 500).unwrap()
    }

    fn delivered(v: Verdict) -> (String, bool) {
        match v {
            Verdict::Deliver { text, masked } => (text, masked),
            Verdict::Reject { reason } => panic!("rejected: {reason:?}"),
        }
    }

    #[test]
    fn english_words_are_masked_whatever_their_case() {
        let p = mask(&["damn"]);
        assert_eq!(
            delivered(p.verdict("Damn it, DAMN")),
            ("**** it, ****".to_owned(), true)
        );
    }

    #[test]
    fn chinese_words_are_masked_character_by_character() {
        let p = mask(&["笨蛋", "傻瓜"]);
        assert_eq!(
            delivered(p.verdict("你是笨蛋吗？傻瓜")),
            ("你是**吗？**".to_owned(), true)
        );
    }

    #[test]
    fn full_width_and_mixed_case_letters_match_and_are_masked_in_place() {
        let p = mask(&["damn", "ｆｏｏ１"]);
        // Full-width D, a, m and an ASCII n: four original characters become four stars.
        assert_eq!(
            delivered(p.verdict("ＤａＭn！")),
            ("****！".to_owned(), true)
        );
        assert_eq!(
            delivered(p.verdict("say Foo1")),
            ("say ****".to_owned(), true)
        );
    }

    #[test]
    fn the_longest_leftmost_word_wins() {
        let p = mask(&["ab", "abcd"]);
        assert_eq!(delivered(p.verdict("xabcdx")), ("x****x".to_owned(), true));
    }

    #[test]
    fn reject_mode_refuses_the_message() {
        let p = Policy::from_list("damn, 笨蛋", Mode::Reject, 500).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            p.verdict("你这个笨蛋"),
            Verdict::Reject {
                reason: Refusal::BannedWords
            }
        );
        assert_eq!(delivered(p.verdict("hello")), ("hello".to_owned(), false));
    }

    #[test]
    fn the_limit_counts_characters_not_bytes() {
        let p = Policy::new(["x"; 0], Mode::Mask, 3).unwrap();
        assert_eq!(delivered(p.verdict("你好吗")), ("你好吗".to_owned(), false));
        assert_eq!(
            p.verdict("你好吗?"),
            Verdict::Reject {
                reason: Refusal::TooLong
            }
        );
    }

    #[test]
    fn empty_messages_and_empty_words_are_handled() {
        let p = Policy::from_list(" ,, ", Mode::Mask, 10).unwrap();
        assert!(p.is_empty());
        assert_eq!(
            delivered(p.verdict("anything")),
            ("anything".to_owned(), false)
        );
        assert_eq!(
            p.verdict("  "),
            Verdict::Reject {
                reason: Refusal::InvalidMessage
            }
        );
        assert!(matches!(
            Policy::new(["a"], Mode::Mask, 0),
            Err(WordListError::ZeroLimit)
        ));
    }

    #[test]
    fn folding_maps_one_character_to_one() {
        assert_eq!(fold("ＡＢｃ１！\u{3000}Zz汉"), "abc1! zz汉");
        assert_eq!(Mode::parse(" Reject "), Some(Mode::Reject));
        assert_eq!(Mode::parse("drop"), None);
    }

    /// The masking of the first version: fold character by character, then walk the folded
    /// and the original text side by side. The fast paths must agree with it.
    fn reference_mask(p: &Policy, text: &str) -> Option<String> {
        let folded: String = text.chars().map(fold_char).collect();
        let mut matches = p.automaton.find_iter(&folded).peekable();
        matches.peek()?;
        let mut out = String::new();
        let mut current = matches.next();
        for ((fpos, _), orig) in folded.char_indices().zip(text.chars()) {
            while let Some(m) = current {
                if fpos >= m.end() {
                    current = matches.next();
                } else {
                    break;
                }
            }
            match current {
                Some(m) if fpos >= m.start() => out.push(MASK_CHAR),
                _ => out.push(orig),
            }
        }
        Some(out)
    }

    #[test]
    fn folding_keeps_what_needs_no_folding_and_spots_only_the_forms_it_folds() {
        let plain = fold_text("ok 好的。、");
        assert!(matches!(plain.text, Cow::Borrowed(_)) && plain.same_offsets());
        let caps = fold_text("Good 老师");
        assert_eq!(
            (caps.text.as_ref(), caps.same_offsets()),
            ("good 老师", true)
        );
        // U+FF61 and U+FF00 share the lead byte of the full-width forms but are not folded.
        let wide = fold_text("ＨＩ\u{3000}｡\u{FF00}，Ｚ");
        assert_eq!(wide.text.as_ref(), "hi ｡\u{FF00},z");
        assert_eq!(wide.shrunk_at, [0, 1, 2, 9, 10]);
        assert_eq!(fold("\u{FF5E}\u{FF5F}"), "~\u{FF5F}");
    }

    proptest::proptest! {
        #[test]
        fn masking_agrees_with_character_by_character_folding(
            text in "[a-dA-DＡ-Ｄａ-ｄ笨蛋。，\u{3000}\u{FF61} !]{0,40}",
        ) {
            let p = mask(&["ab", "笨蛋", "dd", "c，", "b c"]);
            let expected = reference_mask(&p, &text).unwrap_or_else(|| text.clone());
            let masked = expected != text;
            if text.trim().is_empty() {
                proptest::prop_assert_eq!(
                    p.verdict(&text),
                    Verdict::Reject { reason: Refusal::InvalidMessage }
                );
            } else {
                proptest::prop_assert_eq!(
                    p.verdict(&text),
                    Verdict::Deliver { text: expected, masked }
                );
            }
            proptest::prop_assert_eq!(fold(&text), text.chars().map(fold_char).collect::<String>());
        }

        #[test]
        fn masking_keeps_the_length_and_every_unmatched_character(
            text in "[a-dＡ-Ｄ笨蛋 ]{0,40}",
        ) {
            let p = mask(&["ab", "笨蛋", "dd"]);
            if let Verdict::Deliver { text: out, .. } = p.verdict(&text) {
                proptest::prop_assert_eq!(out.chars().count(), text.chars().count());
                for (o, t) in out.chars().zip(text.chars()) {
                    proptest::prop_assert!(o == t || o == MASK_CHAR);
                }
                proptest::prop_assert!(!p.automaton.is_match(&fold(&out)));
            }
        }
    }
}
