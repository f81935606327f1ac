//! What the fixtures are made of: a fixed key set, fixed times, and for every fixture file the
//! MQTT password it carries, built with `signin::issue` so anyone can regenerate the files
//! (`cargo test -p authorizer --test fixtures -- --ignored`) and the test suite checks that
//! they are exactly what this module says. Also the moto set-up shared by the handler tests,
//! the cold-start measurement and the `fixture-moto` example.
//!
//! The key below is a test key: it signs only these fixtures and must never sign anything
//! else (a real key set is made as infra/DEPLOY.md says).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test helpers

use std::path::PathBuf;

use base64::Engine as _;
use mapping::{ClientId, RoomId};
use serde_json::Value;
use signin::{KeySet, LifetimeBounds, TokenRequest};

/// The fixtures' key ID.
pub const KID: &str = "fixture-2026";
/// The fixtures' key: 32 bytes, for these fixtures only.
pub const KEY: &[u8; 32] = b"classroom-rules fixture key 0001";
/// A key that is not in the fixture key set (the wrong-key-id fixture).
pub const OTHER_KID: &str = "retired-2025";
/// Its secret.
pub const OTHER_KEY: &[u8; 32] = b"classroom-rules retired key 2025";
/// The time the tests run at: 2026-01-01T00:00:00Z.
pub const NOW: u64 = 1_767_225_600;
/// When the valid fixture tokens were issued: an hour before [`NOW`].
pub const ISSUED: u64 = NOW - 3600;
/// When they expire: 2100-01-01T00:00:00Z, so the fixtures also verify under the real clock
/// (`cargo lambda invoke`, the cold-start run). Longer than the issuer would ever issue (30
/// days); verification does not bound lifetimes, expiry is what counts.
pub const FAR: u64 = 4_102_444_800;
/// The fixtures' account and region.
pub const ARN_PREFIX: &str = "arn:aws:iot:us-east-1:123456789012";
/// The secret and table names of the fixture environment (as in Cargo.toml's
/// `[package.metadata.lambda.env]`).
pub const SECRET_ID: &str = "authorizer-fixture-keys";
/// The TokenTable of the fixture environment.
pub const TOKEN_TABLE: &str = "authorizer-fixture-tokens";
/// The token ID of the revoked fixture.
pub const REVOKED_JTI: &str = "fixture-revoked";
/// The parents of §2.
pub const UPLINK: &str = "roomSend";
/// The downlink parent.
pub const DOWNLINK: &str = "room";

/// The fixture key set.
pub fn keys() -> KeySet {
    KeySet::new(KID, KEY.to_vec()).unwrap()
}

fn other_keys() -> KeySet {
    KeySet::new(OTHER_KID, OTHER_KEY.to_vec()).unwrap()
}

/// The classroom request for `client` in `rooms`, valid from [`ISSUED`] to [`FAR`].
pub fn classroom(client: &str, rooms: &[&str]) -> TokenRequest {
    let rooms: Vec<RoomId> = rooms.iter().map(|r| RoomId::parse(r).unwrap()).collect();
    signin::classroom_request(
        &ClientId::parse(client).unwrap(),
        &rooms,
        UPLINK,
        DOWNLINK,
        FAR - ISSUED,
    )
}

/// Issues `req` with `keys` at `iat`, without the issuer's lifetime bounds.
pub fn issue_with(req: &TokenRequest, keys: &KeySet, iat: u64, jti: &str) -> signin::Issued {
    let bounds = LifetimeBounds {
        min_secs: 1,
        max_secs: u64::MAX / 2,
    };
    signin::issue(req, keys, bounds, iat, jti).unwrap()
}

/// A valid fixture token.
pub fn token(req: &TokenRequest, jti: &str) -> String {
    issue_with(req, &keys(), ISSUED, jti).token
}

/// Flips one character of a token's claims part (the signature no longer matches).
pub fn tamper(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Vec<char> = parts[2].chars().collect();
    let i = claims.len() / 2;
    claims[i] = if claims[i] == 'A' { 'B' } else { 'A' };
    let claims: String = claims.into_iter().collect();
    format!("{}.{}.{}.{}", parts[0], parts[1], claims, parts[3])
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The MQTT password (as the event carries it: base64, or deliberately not) of each fixture;
/// `None` for a fixture without one.
pub fn password(fixture: &str) -> Option<String> {
    let student1 = || classroom("GID_student@@@001", &["1"]);
    Some(match fixture {
        "mqtt-over-wss" => b64(&token(&student1(), "fixture-wss")),
        "mqtt-on-443" => b64(&token(
            &classroom("GID_teacher@@@001", &["1", "2"]),
            "fixture-443",
        )),
        "password-absent" => return None,
        // The token itself, not base64 ('.' is not in the alphabet).
        "password-not-base64" => token(&student1(), "fixture-raw"),
        "client-id-absent" => b64(&token(&student1(), "fixture-no-client")),
        // A token of GID_student@@@002 on the CONNECT of GID_student@@@001.
        "token-for-another-client" => b64(&token(
            &classroom("GID_student@@@002", &["1"]),
            "fixture-other",
        )),
        "expired" => {
            let mut req = student1();
            req.lifetime_secs = 3600;
            b64(&issue_with(&req, &keys(), NOW - 7200, "fixture-expired").token)
        }
        "revoked" => b64(&token(&classroom("GID_student@@@003", &["1"]), REVOKED_JTI)),
        "tampered" => b64(&tamper(&token(&student1(), "fixture-tampered"))),
        "wrong-key-id" => {
            b64(&issue_with(&student1(), &other_keys(), ISSUED, "fixture-wrong-kid").token)
        }
        // 48 rooms: 96 room filters + system + p2p = 98 read, 2 write: the limit of 100.
        "hundred-filters" => {
            let rooms: Vec<String> = (1..=48).map(|r| r.to_string()).collect();
            let rooms: Vec<&str> = rooms.iter().map(String::as_str).collect();
            b64(&token(
                &classroom("GID_student@@@004", &rooms),
                "fixture-hundred",
            ))
        }
        // Alibaba's form: one token for reading, another for writing.
        "alibaba-r-w-form" => {
            let full = classroom("GID_student@@@005", &["1"]);
            let read = TokenRequest {
                write: Vec::new(),
                ..full.clone()
            };
            let write = TokenRequest {
                read: Vec::new(),
                ..full
            };
            b64(&format!(
                "R|{}|W|{}",
                token(&read, "fixture-alibaba-r"),
                token(&write, "fixture-alibaba-w")
            ))
        }
        other => panic!("fixture {other} has no password spec in tests/common/mod.rs"),
    })
}

/// The fixture directory.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every fixture name (file stem), sorted.
pub fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == "json").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    names
}

/// A fixture event.
pub fn fixture(name: &str) -> Value {
    let path = fixtures_dir().join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The fixture environment in a moto: the key set in [`SECRET_ID`], the TokenTable
/// [`TOKEN_TABLE`] with the revoked fixture token recorded and revoked.
pub async fn provision(sdk: &aws_config::SdkConfig) {
    testkit::put_secret(sdk, SECRET_ID, &keys().to_json()).await;
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    if ddb
        .describe_table()
        .table_name(TOKEN_TABLE)
        .send()
        .await
        .is_err()
    {
        testkit::create_hash_table(&ddb, TOKEN_TABLE, "id").await;
    }
    let revoked = issue_with(
        &classroom("GID_student@@@003", &["1"]),
        &keys(),
        ISSUED,
        REVOKED_JTI,
    );
    let table = stores::TokenTable::new(ddb, TOKEN_TABLE);
    // Recorded once: a second run finds the record (the condition refuses to overwrite it).
    let _ = table.record_issued(&revoked.claims).await;
    assert!(table.revoke(REVOKED_JTI, ISSUED + 60).await.unwrap());
}
