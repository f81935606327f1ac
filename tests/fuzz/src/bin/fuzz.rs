//! One fuzz target, named by `FUZZ_TARGET` (see the crate docs): under AFL++ with the `afl`
//! feature (`make fuzz`), else on one input from stdin (replaying a crash:
//! `FUZZ_TARGET=uplink target/fuzz/debug/fuzz < crash`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let name = std::env::var("FUZZ_TARGET").unwrap_or_default();
    let Some((_, target)) = classroom_fuzz::TARGETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = classroom_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("FUZZ_TARGET must be one of {names:?}, not {name:?}");
        return ExitCode::from(2);
    };
    run(*target);
    ExitCode::SUCCESS
}

#[cfg(feature = "afl")]
fn run(target: fn(&[u8])) {
    afl::fuzz!(|data: &[u8]| target(data));
}

#[cfg(not(feature = "afl"))]
fn run(target: fn(&[u8])) {
    use std::io::Read as _;
    let mut data = Vec::new();
    if std::io::stdin().read_to_end(&mut data).is_ok() {
        target(&data);
    }
}
