//! Who may connect to the local broker (pure: the FFI layer reads the clients file and hands
//! its text in).
//!
//! In AWS IoT Core a device's client ID is bound to its certificate (`${iot:ClientId}` in the
//! policy), so no device can connect as another. Locally the same binding is a roster: each
//! classroom client has a password in the clients file, and it must connect with its client ID
//! as the username and that password. A student who knows only their own password cannot take
//! the teacher's client ID, and a refused CONNECT produces no lifecycle event and takes no live
//! session over.
//!
//! The backend identity is not in the roster: its connections (several, each with its own
//! client ID) are left to Mosquitto's `password_file`.

/// What the plugin answers to one CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The backend username: Mosquitto's `password_file` decides (the plugin defers).
    Backend,
    /// A classroom client whose username, client ID and password match the roster.
    Allow,
    /// Refused, and why (logged by the broker, never sent to the client).
    Deny(String),
}

/// Decides one CONNECT. `clients` is the text of the clients file: one `<clientId> <password>`
/// per line; blank lines and lines starting with `#` are ignored.
pub fn decide(
    username: Option<&str>,
    password: Option<&str>,
    client_id: Option<&str>,
    backend_username: &str,
    clients: &str,
) -> Decision {
    let Some(user) = username.filter(|u| !u.is_empty()) else {
        return Decision::Deny(format!(
            "{}: no username (classroom clients sign in with their client ID and password)",
            client_id.unwrap_or("?")
        ));
    };
    if user == backend_username {
        return Decision::Backend;
    }
    let Some(client_id) = client_id.filter(|c| !c.is_empty()) else {
        return Decision::Deny(format!("{user}: no client ID"));
    };
    if user != client_id {
        return Decision::Deny(format!(
            "{client_id}: username {user:?} differs from the client ID (one identity per client)"
        ));
    }
    match roster_password(clients, client_id) {
        None => Decision::Deny(format!("{client_id}: not in the roster")),
        Some(expected) if Some(expected) == password => Decision::Allow,
        Some(_) => Decision::Deny(format!("{client_id}: wrong password")),
    }
}

/// The password of `client_id` in the clients file text, if listed (the first entry wins).
pub fn roster_password<'a>(clients: &'a str, client_id: &str) -> Option<&'a str> {
    clients
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(char::is_whitespace))
        .find(|(id, _)| *id == client_id)
        .map(|(_, pw)| pw.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENTS: &str = "# generated\n\nGID_teacher@@@001 t-secret\nGID_student@@@001 a-secret\n  GID_student@@@002\tb-secret  \n";

    fn d(user: Option<&str>, pw: Option<&str>, id: Option<&str>) -> Decision {
        decide(user, pw, id, "backend", CLIENTS)
    }

    #[test]
    fn a_listed_client_with_its_password_is_allowed() {
        let t = "GID_teacher@@@001";
        assert_eq!(d(Some(t), Some("t-secret"), Some(t)), Decision::Allow);
        let b = "GID_student@@@002";
        assert_eq!(d(Some(b), Some("b-secret"), Some(b)), Decision::Allow);
    }

    #[test]
    fn the_backend_is_left_to_the_password_file_whatever_its_client_id() {
        assert_eq!(
            d(Some("backend"), Some("x"), Some("rules-bridge-1")),
            Decision::Backend
        );
        assert_eq!(d(Some("backend"), None, None), Decision::Backend);
    }

    #[test]
    fn a_student_cannot_claim_the_teacher_client_id() {
        // Own credentials, teacher's client ID.
        let r = d(
            Some("GID_student@@@001"),
            Some("a-secret"),
            Some("GID_teacher@@@001"),
        );
        assert!(
            matches!(&r, Decision::Deny(why) if why.contains("differs")),
            "{r:?}"
        );
        // Teacher's username, student's password.
        let t = "GID_teacher@@@001";
        let r = d(Some(t), Some("a-secret"), Some(t));
        assert!(
            matches!(&r, Decision::Deny(why) if why.contains("wrong password")),
            "{r:?}"
        );
    }

    #[test]
    fn anonymous_unknown_and_passwordless_clients_are_refused() {
        let a = "GID_student@@@001";
        for (user, pw, id, why) in [
            (None, None, Some(a), "no username"),
            (Some(""), Some("a-secret"), Some(a), "no username"),
            (Some(a), None, Some(a), "wrong password"),
            (Some(a), Some(""), Some(a), "wrong password"),
            (Some(a), Some("a-secret"), None, "no client ID"),
            (
                Some("GID_student@@@009"),
                Some("x"),
                Some("GID_student@@@009"),
                "not in the roster",
            ),
            // A comment line is not an entry.
            (Some("#"), Some("generated"), Some("#"), "not in the roster"),
        ] {
            let r = d(user, pw, id);
            assert!(
                matches!(&r, Decision::Deny(w) if w.contains(why)),
                "{user:?}/{id:?}: {r:?}"
            );
        }
    }

    #[test]
    fn roster_lines_are_trimmed_and_the_first_entry_wins() {
        assert_eq!(
            roster_password(CLIENTS, "GID_student@@@002"),
            Some("b-secret")
        );
        assert_eq!(roster_password("x one\nx two\n", "x"), Some("one"));
        assert_eq!(roster_password("x\n", "x"), None);
    }
}
