//! `signing-keys`: the local stack's signing key set, managed with the same `signin::KeySet`
//! rules the issuer and the verifiers apply (sizes, key IDs, the current key cannot be retired).
//!
//! ```text
//! signing-keys new <file>           a key set of one fresh key
//! signing-keys rotate <file>        add a fresh key and make it current (old keys still verify)
//! signing-keys retire <file> <kid>  remove an old key (its tokens stop verifying)
//! ```
//! The file is written 0600 through a temporary file and a rename, so the broker plugin never
//! reads half of it. Secrets come from `/dev/urandom`; nothing secret is printed.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use signin::KeySet;

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(bytes)
}

/// A fresh key ID: `k<seconds since the epoch><4 random hex digits>`.
fn new_kid() -> Result<String, String> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let tag: String = random::<2>()?.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("k{secs}{tag}"))
}

fn read(path: &Path) -> Result<KeySet, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    KeySet::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write(path: &Path, keys: &KeySet) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(keys.to_json().as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn run(args: &[String]) -> Result<KeySet, String> {
    let usage = "usage: signing-keys new <file> | rotate <file> | retire <file> <kid>";
    let (op, path) = match args {
        [op, path, ..] => (op.as_str(), Path::new(path)),
        _ => return Err(usage.into()),
    };
    let keys = match (op, &args[2..]) {
        ("new", []) => {
            KeySet::new(&new_kid()?, random::<32>()?.to_vec()).map_err(|e| e.to_string())?
        }
        ("rotate", []) => {
            let mut keys = read(path)?;
            keys.rotate(&new_kid()?, random::<32>()?.to_vec())
                .map_err(|e| e.to_string())?;
            keys
        }
        ("retire", [kid]) => {
            let mut keys = read(path)?;
            keys.retire(kid).map_err(|e| e.to_string())?;
            keys
        }
        _ => return Err(usage.into()),
    };
    write(path, &keys)?;
    Ok(keys)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(keys) => {
            let all: Vec<&str> = keys.kids().collect();
            eprintln!(
                "[stack] signing keys: current {}, all {all:?}",
                keys.current_kid()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("[stack] signing-keys: {e}");
            ExitCode::from(1)
        }
    }
}
