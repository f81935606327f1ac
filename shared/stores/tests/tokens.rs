//! The TokenTable adapter against a real moto, with the template's key schema (`id` S).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

mod common;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use common::{counting_client, create_token_table};
use signin::{Claims, Grant, Revocations, TokenError};
use stores::attrs::token as a;
use stores::{TokenRecord, TokenTable};
use testkit::Moto;

const CLIENT: &str = "GID_student@@@001";

fn claims(token_id: &str, client: &str, iat: u64, exp: u64) -> Claims {
    Claims {
        client_id: client.to_owned(),
        read: vec!["room/system".to_owned()],
        write: vec!["roomSend/message".to_owned()],
        issued_at: iat,
        expires_at: exp,
        token_id: token_id.to_owned(),
    }
}

fn grant(client: &str, iat: u64, token_ids: &[&str]) -> Grant {
    Grant {
        client_id: client.to_owned(),
        read: vec![],
        write: vec![],
        issued_at: iat,
        expires_at: iat + 3600,
        token_ids: token_ids.iter().map(|t| (*t).to_owned()).collect(),
    }
}

async fn raw_item(
    ddb: &aws_sdk_dynamodb::Client,
    id: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    ddb.get_item()
        .table_name("tokens")
        .key(a::ID, AttributeValue::S(id.to_owned()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

async fn setup(
    moto: &Moto,
) -> (
    TokenTable,
    aws_sdk_dynamodb::Client,
    testkit::RequestCounter,
) {
    let sdk = moto.sdk_config().await;
    let (ddb, counter) = counting_client(&sdk);
    create_token_table(&ddb, "tokens").await;
    counter.reset();
    (TokenTable::new(ddb.clone(), "tokens"), ddb, counter)
}

#[tokio::test]
async fn an_issued_token_is_recorded_in_its_layout_and_never_overwritten() {
    let moto = Moto::start();
    let (table, ddb, _) = setup(&moto).await;
    table
        .record_issued(&claims("t1", CLIENT, 100, 400))
        .await
        .unwrap();
    let item = raw_item(&ddb, "token#t1").await;
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["clientId", "expiresAt", "id", "issuedAt"]);
    assert_eq!(item["clientId"], AttributeValue::S(CLIENT.to_owned()));
    assert_eq!(item["issuedAt"], AttributeValue::N("100".to_owned()));
    assert_eq!(item["expiresAt"], AttributeValue::N("400".to_owned()));
    assert_eq!(
        table.status("t1").await.unwrap(),
        Some(TokenRecord {
            client_id: CLIENT.to_owned(),
            issued_at: 100,
            expires_at: 400,
            revoked: false,
            revoked_at: None,
        })
    );

    // The same token ID again (a revoked record must never be reset): refused.
    table.revoke("t1", 150).await.unwrap();
    let err = table
        .record_issued(&claims("t1", CLIENT, 200, 900))
        .await
        .unwrap_err();
    assert_eq!((err.op, err.table.as_str()), ("PutItem", "tokens"));
    assert!(err.message.contains("ConditionalCheckFailed"), "{err}");
    assert!(table.status("t1").await.unwrap().unwrap().revoked);
}

#[tokio::test]
async fn an_unknown_token_has_no_status_and_revoking_it_says_so() {
    let moto = Moto::start();
    let (table, ddb, _) = setup(&moto).await;
    assert_eq!(table.status("nope").await.unwrap(), None);
    assert!(!table.revoke("nope", 100).await.unwrap());
    // Revoking must not have created a record.
    let scan = ddb.scan().table_name("tokens").send().await.unwrap();
    assert_eq!(scan.count, 0);
}

#[tokio::test]
async fn a_revoked_token_says_so_and_keeps_its_first_revocation_time() {
    let moto = Moto::start();
    let (table, ddb, _) = setup(&moto).await;
    table
        .record_issued(&claims("t1", CLIENT, 100, 400))
        .await
        .unwrap();
    assert!(table.revoke("t1", 200).await.unwrap());
    assert!(table.revoke("t1", 300).await.unwrap());
    let record = table.status("t1").await.unwrap().unwrap();
    assert!(record.revoked);
    assert_eq!(record.revoked_at, Some(200));
    let item = raw_item(&ddb, "token#t1").await;
    assert_eq!(item["revoked"], AttributeValue::Bool(true));
    assert_eq!(item["revokedAt"], AttributeValue::N("200".to_owned()));
    // The TTL attribute is still the token's expiry.
    assert_eq!(item["expiresAt"], AttributeValue::N("400".to_owned()));
}

#[tokio::test]
async fn a_revoke_all_keeps_the_latest_time_and_lives_thirty_days() {
    let moto = Moto::start();
    let (table, ddb, _) = setup(&moto).await;
    assert_eq!(table.revoked_before(CLIENT).await.unwrap(), None);
    assert_eq!(table.revoke_client(CLIENT, 500).await.unwrap(), 500);
    let item = raw_item(&ddb, &format!("client#{CLIENT}")).await;
    assert_eq!(item["revokedBefore"], AttributeValue::N("500".to_owned()));
    assert_eq!(
        item["expiresAt"],
        AttributeValue::N((500 + 30 * 24 * 3600).to_string())
    );
    // An earlier clock (another container) does not move it back; the same second is a no-op.
    assert_eq!(table.revoke_client(CLIENT, 400).await.unwrap(), 500);
    assert_eq!(table.revoke_client(CLIENT, 500).await.unwrap(), 500);
    assert_eq!(table.revoke_client(CLIENT, 600).await.unwrap(), 600);
    assert_eq!(table.revoked_before(CLIENT).await.unwrap(), Some(600));
    assert_eq!(
        raw_item(&ddb, &format!("client#{CLIENT}")).await["expiresAt"],
        AttributeValue::N((600 + 30 * 24 * 3600).to_string())
    );
}

#[tokio::test]
async fn the_revocations_of_a_sign_in_are_read_in_one_batch_get() {
    let moto = Moto::start();
    let (table, _, counter) = setup(&moto).await;
    let other = "GID_student@@@002";
    for (id, client) in [("t1", CLIENT), ("t2", CLIENT), ("t3", other)] {
        table
            .record_issued(&claims(id, client, 100, 4000))
            .await
            .unwrap();
    }
    table.revoke("t2", 150).await.unwrap();
    table.revoke("t3", 150).await.unwrap();
    table.revoke_client(CLIENT, 90).await.unwrap();
    counter.reset();

    let r = table
        .revocations_for(&grant(CLIENT, 100, &["t1", "t2"]))
        .await
        .unwrap();
    assert_eq!(counter.count("BatchGetItem"), 1);
    assert_eq!(counter.all().len(), 1, "only BatchGetItem");
    assert_eq!(
        r,
        Revocations {
            tokens: BTreeSet::from(["t2".to_owned()]),
            clients: BTreeMap::from([(CLIENT.to_owned(), 90)]),
        }
    );
    assert_eq!(
        r.check(&grant(CLIENT, 100, &["t1", "t2"])),
        Err(TokenError::Revoked)
    );

    // t1 alone, issued after the revoke-all: not revoked.
    let g = grant(CLIENT, 100, &["t1"]);
    let r = table.revocations_for(&g).await.unwrap();
    assert_eq!(r.tokens, BTreeSet::new());
    assert_eq!(r.check(&g), Ok(()));
    // A token the table has never seen, of a client never revoked: nothing.
    let g = grant("GID_student@@@003", 100, &["unknown"]);
    assert_eq!(
        table.revocations_for(&g).await.unwrap(),
        Revocations::default()
    );
    // The revoke-all covers every token issued up to its second.
    let g = grant(CLIENT, 90, &["t1"]);
    let r = table.revocations_for(&g).await.unwrap();
    assert_eq!(r.check(&g), Err(TokenError::Revoked));
}

#[tokio::test]
async fn keys_left_unprocessed_are_asked_for_again() {
    // moto, like DynamoDB, answers at most 16 MB per BatchGetItem and returns the rest as
    // UnprocessedKeys: 45 revoked records of ~380 KB each need two calls.
    let moto = Moto::start();
    let (table, ddb, counter) = setup(&moto).await;
    let padding = "x".repeat(380 * 1024);
    let ids: Vec<String> = (0..45).map(|i| format!("big{i:02}")).collect();
    for id in &ids {
        ddb.put_item()
            .table_name("tokens")
            .item(a::ID, AttributeValue::S(format!("token#{id}")))
            .item(a::CLIENT_ID, AttributeValue::S(CLIENT.to_owned()))
            .item(a::ISSUED_AT, AttributeValue::N("100".to_owned()))
            .item(a::EXPIRES_AT, AttributeValue::N("4000".to_owned()))
            .item(a::REVOKED, AttributeValue::Bool(true))
            .item("padding", AttributeValue::S(padding.clone()))
            .send()
            .await
            .unwrap();
    }
    counter.reset();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let r = table
        .revocations_for(&grant(CLIENT, 100, &refs))
        .await
        .unwrap();
    assert_eq!(r.tokens.len(), 45);
    assert!(counter.count("BatchGetItem") >= 2, "{:?}", counter.all());
}

#[tokio::test]
async fn every_revocation_is_exported_across_scan_pages() {
    let moto = Moto::start();
    let (table, ddb, counter) = setup(&moto).await;
    assert_eq!(
        table.all_revocations().await.unwrap(),
        Revocations::default()
    );
    // Enough large items that the Scan needs several 1 MB pages.
    let padding = "x".repeat(200 * 1024);
    let mut expected = Revocations::default();
    for i in 0..12 {
        let id = format!("t{i:02}");
        table
            .record_issued(&claims(&id, CLIENT, 100, 4000))
            .await
            .unwrap();
        ddb.update_item()
            .table_name("tokens")
            .key(a::ID, AttributeValue::S(format!("token#{id}")))
            .update_expression("SET padding = :p")
            .expression_attribute_values(":p", AttributeValue::S(padding.clone()))
            .send()
            .await
            .unwrap();
        if i % 3 == 0 {
            table.revoke(&id, 200).await.unwrap();
            expected.tokens.insert(id);
        }
    }
    for (i, client) in ["GID_student@@@001", "GID_teacher@@@001"]
        .iter()
        .enumerate()
    {
        let t = 300 + i as u64;
        table.revoke_client(client, t).await.unwrap();
        expected.clients.insert((*client).to_owned(), t);
    }
    counter.reset();
    assert_eq!(table.all_revocations().await.unwrap(), expected);
    assert!(counter.count("Scan") >= 2, "{:?}", counter.all());
}
