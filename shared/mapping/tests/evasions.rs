//! Issue 14's evasions, each of which once reached a whole room unmasked, and the near-misses
//! that must stay untouched: a table, checked in mask mode (exactly the characters of the
//! hit become `*`, everything else byte for byte) and in reject mode (refused / delivered).

use mapping::{Mode, Policy, Refusal, Verdict};

const BANNED: [&str; 3] = ["idiot", "笨蛋", "stupid"];

fn policy(mode: Mode) -> Policy {
    match Policy::new(BANNED, mode, 500) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// (what a student typed, what the room gets in mask mode).
const EVASIONS: [(&str, &str); 14] = [
    ("you id\u{200B}iot", "you ******"), // zero-width space, masked with the hit
    ("id\u{AD}iot!", "******!"),         // soft hyphen
    ("i d i o t", "*********"),          // spaces between single letters
    ("i.d.i.o.t", "*********"),          // dots
    ("so i-d-i-o-t, ok", "so *********, ok"), // dashes, then an ordinary comma
    ("\u{456}diot", "*****"),            // Cyrillic і
    ("ID\u{130}OT", "*****"),            // Turkish dotted capital İ
    ("\u{131}diot", "*****"),            // dotless ı
    ("笨 蛋", "***"),                    // a space between ideographs
    ("你是笨·蛋吗", "你是***吗"),        // a middle dot
    ("ＳＴＵＰＩＤ", "******"),          // full width
    ("StUpId", "******"),                // mixed case
    ("\u{455}tu\u{440}id", "******"),    // Cyrillic ѕ and р
    ("i\u{2060}d\u{200D}iot", "*******"), // word joiner and zero-width joiner
];

/// Ordinary messages that look a little like a banned word and must be delivered untouched.
const NEAR_MISSES: [&str; 12] = [
    "said I do it",
    "I do it my way",
    "idioms are fun",
    "a d i o s",
    "i d e a",
    "room 1 0 1, seat i d",
    "我很笨，蛋糕呢", // "I'm so slow, where's the cake": a comma between ideographs
    "笨鸟先飞。蛋糕好吃", // a full stop between them
    "蛋 and 笨",
    "st up id",
    "stu pid",
    "corn on the cob",
];

#[test]
fn every_evasion_is_masked_exactly() {
    let p = policy(Mode::Mask);
    for (typed, expected) in EVASIONS {
        assert_eq!(
            p.verdict(typed),
            Verdict::Deliver {
                text: expected.to_owned(),
                masked: true
            },
            "{typed:?}"
        );
    }
}

#[test]
fn every_evasion_is_refused_in_reject_mode() {
    let p = policy(Mode::Reject);
    for (typed, _) in EVASIONS {
        assert_eq!(
            p.verdict(typed),
            Verdict::Reject {
                reason: Refusal::BannedWords
            },
            "{typed:?}"
        );
    }
}

#[test]
fn near_misses_are_delivered_byte_for_byte() {
    for mode in [Mode::Mask, Mode::Reject] {
        let p = policy(mode);
        for text in NEAR_MISSES {
            assert_eq!(
                p.verdict(text),
                Verdict::Deliver {
                    text: text.to_owned(),
                    masked: false
                },
                "{mode:?} {text:?}"
            );
        }
    }
}

#[test]
fn bidi_overrides_and_controls_never_reach_the_room() {
    let p = policy(Mode::Mask);
    let cases = [
        ("hello \u{202E}dlrow", "hello dlrow", false),
        ("ring\u{7} \u{1B}[31mred\u{1B}[0m", "ring [31mred[0m", false),
        ("line one\r\nline\ttwo", "line one\nline\ttwo", false),
        ("\u{2067}id\u{200B}iot\u{2069}", "******", true),
    ];
    for (typed, expected, masked) in cases {
        assert_eq!(
            p.verdict(typed),
            Verdict::Deliver {
                text: expected.to_owned(),
                masked
            },
            "{typed:?}"
        );
    }
    // Nothing visible left: refused, not delivered empty.
    assert_eq!(
        p.verdict("\u{202E}\u{200B}\u{7}"),
        Verdict::Reject {
            reason: Refusal::InvalidMessage
        }
    );
}
