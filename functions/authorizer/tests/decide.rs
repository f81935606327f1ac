//! The pure decision on real tokens, no IO: what the answer for a verified grant holds, and
//! that it stays within IoT Core's limits as it is actually sent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

mod common;

use authorizer::decide;
use serde_json::Value;
use signin::iot::{MAX_DOCUMENT_CHARS, MAX_DOCUMENTS};

fn grant(req: &signin::TokenRequest, jti: &str, now: u64) -> signin::Grant {
    let token = common::token(req, jti);
    signin::verify_password(&token, &req.client_id, &common::keys(), now).unwrap()
}

/// The policy documents exactly as the serialised answer carries them.
fn sent_documents(
    response: &aws_lambda_events::iot::IoTCoreCustomAuthorizerResponse,
) -> Vec<String> {
    let sent: Value = serde_json::from_str(&serde_json::to_string(response).unwrap()).unwrap();
    sent["policyDocuments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| serde_json::to_string(d).unwrap())
        .collect()
}

#[test]
fn every_document_as_sent_fits_iot_cores_limits_up_to_a_hundred_filters() {
    // From one room to the 48 a classroom token can hold (100 filters), with the longest
    // client ID §3 allows, so the resources are as long as they get.
    let long_client = format!("GID_{}@@@{}", "g".repeat(25), "d".repeat(32));
    assert_eq!(long_client.len(), 64);
    for client in ["GID_student@@@001", long_client.as_str()] {
        for rooms in 1..=signin::MAX_CLASSROOM_ROOMS {
            let names: Vec<String> = (1..=rooms).map(|r| format!("room-{r:04}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let req = common::classroom(client, &names);
            let response = decide::allowed(
                &grant(&req, "t", common::NOW),
                common::ARN_PREFIX,
                common::NOW,
            )
            .unwrap();
            let docs = sent_documents(&response);
            assert!(
                !docs.is_empty() && docs.len() <= MAX_DOCUMENTS,
                "{rooms} rooms: {} documents",
                docs.len()
            );
            for d in &docs {
                assert!(
                    d.chars().count() <= MAX_DOCUMENT_CHARS,
                    "{rooms} rooms: a document of {} chars",
                    d.chars().count()
                );
            }
        }
    }
}

#[test]
fn the_hundred_filter_fixture_grants_every_filter_once_in_its_documents() {
    let rooms: Vec<String> = (1..=48).map(|r| r.to_string()).collect();
    let rooms: Vec<&str> = rooms.iter().map(String::as_str).collect();
    let req = common::classroom("GID_student@@@004", &rooms);
    assert_eq!(req.read.len() + req.write.len(), 100);
    let response = decide::allowed(
        &grant(&req, "fixture-hundred", common::NOW),
        common::ARN_PREFIX,
        common::NOW,
    )
    .unwrap();
    let mut resources: Vec<(String, String)> = Vec::new();
    for doc in &response.policy_documents {
        for st in &doc.as_ref().unwrap().statement {
            for r in &st.resource {
                resources.push((st.action[0].clone(), r.clone()));
            }
        }
    }
    // Connect + 2 publish + 98 receive + 98 subscribe, none twice.
    assert_eq!(resources.len(), 1 + 2 + 98 + 98);
    let mut unique = resources.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), resources.len());
    assert!(resources.contains(&(
        "iot:Subscribe".into(),
        format!("{}:topicfilter/room/message/48", common::ARN_PREFIX)
    )));
}

#[test]
fn connect_is_granted_for_exactly_the_tokens_client_id() {
    let req = common::classroom("GID_student@@@001", &["1"]);
    let response = decide::allowed(
        &grant(&req, "t", common::NOW),
        common::ARN_PREFIX,
        common::NOW,
    )
    .unwrap();
    let connect: Vec<&String> = response
        .policy_documents
        .iter()
        .flat_map(|d| &d.as_ref().unwrap().statement)
        .filter(|s| s.action == ["iot:Connect"])
        .flat_map(|s| &s.resource)
        .collect();
    assert_eq!(
        connect,
        [&format!("{}:client/GID_student@@@001", common::ARN_PREFIX)]
    );
    assert!(response.is_authenticated);
    assert_eq!(
        response.principal_id.as_deref(),
        Some(signin::iot::principal_id("GID_student@@@001").as_str())
    );
}

#[test]
fn the_connection_lasts_the_tokens_remaining_life_within_iot_cores_range() {
    let disconnect = |lifetime: u64, now: u64| {
        let mut req = common::classroom("GID_student@@@001", &["1"]);
        req.lifetime_secs = lifetime;
        let g = signin::verify_password(
            &common::issue_with(&req, &common::keys(), common::NOW, "t").token,
            "GID_student@@@001",
            &common::keys(),
            now,
        )
        .unwrap();
        decide::allowed(&g, common::ARN_PREFIX, now)
            .unwrap()
            .disconnect_after_in_seconds
    };
    assert_eq!(disconnect(3600, common::NOW), 3600);
    assert_eq!(disconnect(3600, common::NOW + 600), 3000);
    // Under 300 s left: IoT Core's minimum; the cloud cannot cut sooner.
    assert_eq!(disconnect(3600, common::NOW + 3500), 300);
    // Longer than a day: a day, then the client reconnects with its (still valid) token.
    assert_eq!(disconnect(7 * 86_400, common::NOW), 86_400);
    let req = common::classroom("GID_student@@@001", &["1"]);
    let r = decide::allowed(
        &grant(&req, "t", common::NOW),
        common::ARN_PREFIX,
        common::NOW,
    )
    .unwrap();
    assert_eq!(r.refresh_after_in_seconds, signin::iot::REFRESH_AFTER_SECS);
}

#[test]
fn wildcards_in_a_grant_become_iot_wildcards_never_literal_plus_or_hash() {
    let req = signin::TokenRequest {
        client_id: "GID_student@@@001".into(),
        read: vec!["room/message/+".into(), "room/status/#".into()],
        write: vec!["roomSend/message".into()],
        lifetime_secs: 3600,
    };
    let token = common::issue_with(&req, &common::keys(), common::NOW, "w").token;
    let g =
        signin::verify_password(&token, "GID_student@@@001", &common::keys(), common::NOW).unwrap();
    let docs = sent_documents(&decide::allowed(&g, common::ARN_PREFIX, common::NOW).unwrap());
    for d in &docs {
        assert!(!d.contains('+') && !d.contains('#'), "{d}");
    }
    assert!(
        docs.iter()
            .any(|d| d.contains("topicfilter/room/message/*"))
    );
}
