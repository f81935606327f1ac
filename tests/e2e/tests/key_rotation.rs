//! Signing-key rotation over real connections (§8, issue 10): after `stack.sh rotate-keys`
//! the issuer signs with the new key and the broker accepts tokens of both keys; after
//! `stack.sh retire-key <old>` tokens of the old key are refused at CONNECT and those of the new
//! one still work. Its own stack: retiring a key refuses every token signed with it, so it must
//! not share a stack with the other tests.

use std::time::Duration;

use e2e::{ConnectOptions, Peer, Stack, Token, Transcript, repo_root};

const ID: &str = "GID_student@@@361";
const ROOM: &str = "keys-1";

fn issue(stack: &Stack) -> Token {
    match stack.issue(ID, &[ROOM], 600) {
        Ok(t) => t,
        Err(e) => panic!("no token: {e}"),
    }
}

/// Connects with `token`: `None` when accepted (the connection is closed again), the error
/// when refused.
async fn sign_in(stack: &Stack, token: &Token, log: &Transcript) -> Option<String> {
    let options = ConnectOptions::token(ID, &token.token, false);
    let endpoint = match stack.endpoint_for(&options) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    match Peer::connect(&endpoint, "student", ID, options, log).await {
        Ok(p) => {
            p.leave().await;
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local stack: run by `make test-e2e`"]
async fn after_rotation_old_and_new_tokens_work_and_after_retiring_the_old_key_old_tokens_are_refused()
 {
    let dir = repo_root().join(format!(".run/e2e-{}-keys", std::process::id()));
    let stack = match Stack::start(&dir, &[("LOCAL_FUNCTIONS", "outflow")]) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let log = Transcript::new(false);
    let Ok(old_kid) = stack.current_kid() else {
        panic!("no current key in {}", dir.display());
    };
    let old = issue(&stack);
    assert_eq!(old.kid(), old_kid, "the issuer signs with the current key");
    assert_eq!(
        sign_in(&stack, &old, &log).await,
        None,
        "the first token signs in"
    );

    // Rotate: a new current key; the issuer picks it up within its refresh (1 s locally).
    let new_kid = match stack.rotate_keys() {
        Ok(k) => k,
        Err(e) => panic!("{e}"),
    };
    assert_ne!(new_kid, old_kid, "rotation made a new key");
    let mut new = issue(&stack);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while new.kid() != new_kid && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        new = issue(&stack);
    }
    assert_eq!(
        new.kid(),
        new_kid,
        "the issuer never signed with the new key"
    );
    assert_eq!(
        sign_in(&stack, &old, &log).await,
        None,
        "an old-key token after rotation"
    );
    assert_eq!(
        sign_in(&stack, &new, &log).await,
        None,
        "a new-key token after rotation"
    );

    // Retire the old key: its tokens are refused from their next CONNECT, the new key's work.
    if let Err(e) = stack.retire_key(&old_kid) {
        panic!("{e}");
    }
    let refused = sign_in(&stack, &old, &log).await;
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("Connection refused, return code")),
        "a token of the retired key {old_kid} was not refused: {refused:?}\n{}",
        log.lines().join("\n")
    );
    assert_eq!(
        sign_in(&stack, &new, &log).await,
        None,
        "a new-key token after retiring"
    );
    let fresh = issue(&stack);
    assert_eq!(
        fresh.kid(),
        new_kid,
        "the issuer signs with the current key"
    );
    assert_eq!(
        sign_in(&stack, &fresh, &log).await,
        None,
        "a fresh token after retiring"
    );
}
