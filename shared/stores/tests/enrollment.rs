//! The EnrollmentTable adapter against a real moto, with the template's key schema
//! (`clientId` S, `roomId` S).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::counting_client;
use mapping::{ClientId, Role, RoomId};
use stores::{Enrollment, EnrollmentTable};
use testkit::{Moto, create_table};

fn rooms(ids: &[&str]) -> Vec<RoomId> {
    ids.iter().map(|r| RoomId::parse(r).unwrap()).collect()
}

fn enrollment(room: &str, role: Role, at_ms: u64, expires: u64) -> Enrollment {
    Enrollment {
        room_id: RoomId::parse(room).unwrap(),
        role,
        enrolled_at_ms: at_ms,
        expires_at: expires,
    }
}

#[tokio::test]
async fn a_client_is_enrolled_in_its_rooms_and_a_later_token_never_shortens_one() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let (ddb, counter) = counting_client(&sdk);
    create_table(&ddb, "enrollment", "clientId", "roomId", false).await;
    let table = EnrollmentTable::new(ddb.clone(), "enrollment");
    let student = ClientId::parse("GID_student@@@001").unwrap();
    let teacher = ClientId::parse("GID_teacher@@@001").unwrap();
    assert_eq!(table.rooms_of(&student).await.unwrap(), vec![]);

    counter.reset();
    table
        .enroll(
            &student,
            &rooms(&["2", "1", "2"]),
            Role::Student,
            5000,
            1_000_000,
        )
        .await
        .unwrap();
    assert_eq!(counter.count("BatchWriteItem"), 1);
    table
        .enroll(&teacher, &rooms(&["1"]), Role::Teacher, 7000, 1_000_000)
        .await
        .unwrap();
    assert_eq!(
        table.rooms_of(&student).await.unwrap(),
        vec![
            enrollment("1", Role::Student, 1_000_000, 5000),
            enrollment("2", Role::Student, 1_000_000, 5000),
        ]
    );
    // The raw item, as moderation reads it.
    let item = ddb
        .get_item()
        .table_name("enrollment")
        .key(
            "clientId",
            AttributeValue::S("GID_teacher@@@001".to_owned()),
        )
        .key("roomId", AttributeValue::S("1".to_owned()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["role"], AttributeValue::S("teacher".to_owned()));
    assert_eq!(item["enrolledAt"], AttributeValue::N("1000000".to_owned()));
    assert_eq!(item["expiresAt"], AttributeValue::N("7000".to_owned()));
    assert_eq!(item.len(), 5);

    // A new token for room 1 expiring sooner keeps room 1's later expiry; room 3 is added;
    // room 2 is untouched.
    table
        .enroll(
            &student,
            &rooms(&["1", "3"]),
            Role::Student,
            4000,
            2_000_000,
        )
        .await
        .unwrap();
    // And one expiring later extends it.
    table
        .enroll(&student, &rooms(&["2"]), Role::Student, 9000, 3_000_000)
        .await
        .unwrap();
    let got = table.rooms_of(&student).await.unwrap();
    assert_eq!(
        got,
        vec![
            enrollment("1", Role::Student, 2_000_000, 5000),
            enrollment("2", Role::Student, 3_000_000, 9000),
            enrollment("3", Role::Student, 2_000_000, 4000),
        ]
    );
    assert!(got[2].is_active(3999) && !got[2].is_active(4000));
}

#[tokio::test]
async fn many_rooms_are_written_in_batches_of_twenty_five() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let (ddb, counter) = counting_client(&sdk);
    create_table(&ddb, "enrollment", "clientId", "roomId", false).await;
    let table = EnrollmentTable::new(ddb, "enrollment");
    let client = ClientId::parse("GID_student@@@001").unwrap();
    let many: Vec<RoomId> = (0..48)
        .map(|i| RoomId::parse(&format!("r{i:02}")).unwrap())
        .collect();
    counter.reset();
    table
        .enroll(&client, &many, Role::Student, 5000, 1)
        .await
        .unwrap();
    assert_eq!(counter.count("BatchWriteItem"), 2);
    let got = table.rooms_of(&client).await.unwrap();
    assert_eq!(
        got.iter().map(|e| e.room_id.clone()).collect::<Vec<_>>(),
        many
    );
}

#[tokio::test]
async fn an_item_without_the_layout_is_an_error_naming_the_client() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    create_table(&ddb, "enrollment", "clientId", "roomId", false).await;
    ddb.put_item()
        .table_name("enrollment")
        .item(
            "clientId",
            AttributeValue::S("GID_student@@@001".to_owned()),
        )
        .item("roomId", AttributeValue::S("1".to_owned()))
        .item("role", AttributeValue::S("janitor".to_owned()))
        .item("expiresAt", AttributeValue::N("1".to_owned()))
        .send()
        .await
        .unwrap();
    let table = EnrollmentTable::new(ddb, "enrollment");
    let err = table
        .rooms_of(&ClientId::parse("GID_student@@@001").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.op, "Query");
    assert!(
        err.message.contains("GID_student@@@001") && err.message.contains("janitor"),
        "{err}"
    );
}
