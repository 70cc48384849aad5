//! `AdyenWebhookVerifier` against Adyen's published vectors and every distinct failure.

use commerce_adyen::{AdyenWebhookVerifier, SignedFields, psp_reference, signature};
use commerce_ports::webhook::{
    PaymentEventKind, WebhookError, WebhookErrorKind, WebhookEvent, WebhookRequest, WebhookVerifier,
};
use commerce_ports::{Currency, Money, Secret};
use proptest::prelude::*;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Published key (Adyen's Java library tests).
const KEY: &str = "9064450A8892A093D9E97EFCC9639DE31B74F3A7803135555A3C96F5A57915D6";
/// HMAC-Base64 of `test_REPORT_AVAILABLE::Magento2Rik:testMerchantRef1:0:EUR:REPORT_AVAILABLE:true`.
const REPORT_SIGNATURE: &str = "NuEkADFmlCC6VgX+wcoPAegIWxVPNBPCuKlM4Hzo5qc=";

fn verifier() -> AdyenWebhookVerifier {
    AdyenWebhookVerifier::new(Secret::new(KEY)).expect("the published key is hex")
}

fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

/// The published REPORT_AVAILABLE item, whose fields produce the published signing string.
fn report_item(signature: &str) -> Value {
    json!({ "NotificationRequestItem": {
        "additionalData": { "hmacSignature": signature },
        "amount": { "currency": "EUR", "value": 0 },
        "eventCode": "REPORT_AVAILABLE",
        "eventDate": "2019-09-20T10:19:10+02:00",
        "merchantAccountCode": "Magento2Rik",
        "merchantReference": "testMerchantRef1",
        "pspReference": "test_REPORT_AVAILABLE",
        "reason": "will contain the url to the report",
        "success": "true"
    }})
}

/// A signed item with the published key.
fn signed_item(psp: &str, original: &str, event_code: &str, success: &str, value: i64) -> Value {
    let value_text = value.to_string();
    let fields = SignedFields {
        psp_reference: psp,
        original_reference: original,
        merchant_account_code: "ShopCOM",
        merchant_reference: "order-1",
        amount_value: &value_text,
        amount_currency: "EUR",
        event_code,
        success,
    };
    let mut item = json!({
        "pspReference": psp, "merchantAccountCode": "ShopCOM", "merchantReference": "order-1",
        "amount": { "value": value, "currency": "EUR" }, "eventCode": event_code, "success": success,
        "eventDate": "2024-05-01T10:00:00Z",
        "additionalData": { "hmacSignature": signature(&Secret::new(KEY), &fields).expect("signs") }
    });
    if !original.is_empty() {
        item["originalReference"] = json!(original);
    }
    json!({ "NotificationRequestItem": item })
}

fn notification(items: Vec<Value>) -> WebhookRequest {
    let body = json!({ "live": "false", "notificationItems": items });
    WebhookRequest::new(vec![("Content-Type".to_owned(), "application/json".to_owned())], body.to_string())
}

fn kind_of(result: Result<Vec<WebhookEvent>, WebhookError>) -> Option<WebhookErrorKind> {
    result.err().map(|e| e.kind)
}

#[test]
fn published_vector_notification_verifies() {
    let events = verifier().verify(&notification(vec![report_item(REPORT_SIGNATURE)]), now()).expect("verifies");
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.provider, "adyen");
    assert_eq!(event.event_id, "test_REPORT_AVAILABLE:REPORT_AVAILABLE:true");
    assert_eq!(event.event_type, "REPORT_AVAILABLE");
    assert_eq!(event.kind, PaymentEventKind::Other);
    assert!(event.success);
    assert_eq!(event.provider_reference.as_deref(), Some("test_REPORT_AVAILABLE"));
    assert_eq!(event.amount, Some(Money::from_minor(0, Currency::EUR)));
    assert_eq!(event.occurred_at.map(OffsetDateTime::unix_timestamp), Some(1_568_967_550));
    assert_eq!(psp_reference(event), Some("test_REPORT_AVAILABLE"));
}

#[test]
fn signature_helper_reproduces_the_published_vector() {
    let fields = SignedFields {
        psp_reference: "test_REPORT_AVAILABLE",
        merchant_account_code: "Magento2Rik",
        merchant_reference: "testMerchantRef1",
        amount_value: "0",
        amount_currency: "EUR",
        event_code: "REPORT_AVAILABLE",
        success: "true",
        ..Default::default()
    };
    assert_eq!(
        fields.signing_string(),
        "test_REPORT_AVAILABLE::Magento2Rik:testMerchantRef1:0:EUR:REPORT_AVAILABLE:true"
    );
    assert_eq!(signature(&Secret::new(KEY), &fields).ok().as_deref(), Some(REPORT_SIGNATURE));
}

#[test]
fn a_batch_of_three_maps_every_item() {
    let batch = notification(vec![
        signed_item("PSP1", "", "AUTHORISATION", "true", 1250),
        signed_item("MOD1", "PSP1", "CAPTURE", "true", 1250),
        signed_item("MOD2", "PSP1", "REFUND", "false", 500),
    ]);
    let events = verifier().verify(&batch, now()).expect("verifies");
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.event_id.as_str(), e.kind.clone(), e.provider_reference.as_deref(), e.success))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("PSP1:AUTHORISATION:true", PaymentEventKind::Authorized, Some("PSP1"), true),
            ("MOD1:CAPTURE:true", PaymentEventKind::Captured, Some("PSP1"), true),
            ("MOD2:REFUND:false", PaymentEventKind::RefundFailed, Some("PSP1"), false),
        ]
    );
    assert_eq!(events[2].amount, Some(Money::from_minor(500, Currency::EUR)));
}

#[test]
fn one_tampered_item_rejects_the_batch_of_three() {
    let mut tampered = signed_item("MOD1", "PSP1", "CAPTURE", "true", 1250);
    tampered["NotificationRequestItem"]["amount"]["value"] = json!(125_000);
    let batch = notification(vec![
        signed_item("PSP1", "", "AUTHORISATION", "true", 1250),
        tampered,
        signed_item("MOD2", "PSP1", "REFUND", "true", 500),
    ]);
    let err = verifier().verify(&batch, now()).expect_err("rejected");
    assert_eq!(err.kind, WebhookErrorKind::NoValidSignature);
    assert!(err.message.contains("notificationItems[1]") && err.message.contains("MOD1"), "{}", err.message);
}

#[test]
fn every_signed_field_is_covered() {
    let fields =
        ["pspReference", "originalReference", "merchantAccountCode", "merchantReference", "eventCode", "success"];
    for field in fields {
        let mut item = signed_item("MOD1", "PSP1", "CAPTURE", "true", 1250);
        item["NotificationRequestItem"][field] = json!(if field == "success" { "false" } else { "changed" });
        let result = verifier().verify(&notification(vec![item]), now());
        assert_eq!(kind_of(result), Some(WebhookErrorKind::NoValidSignature), "{field}");
    }
    let mut item = signed_item("MOD1", "PSP1", "CAPTURE", "true", 1250);
    item["NotificationRequestItem"]["amount"]["currency"] = json!("USD");
    assert_eq!(kind_of(verifier().verify(&notification(vec![item]), now())), Some(WebhookErrorKind::NoValidSignature));
}

#[test]
fn unsigned_fields_may_change() {
    let mut item = signed_item("PSP1", "", "AUTHORISATION", "true", 1250);
    item["NotificationRequestItem"]["reason"] = json!("anything");
    item["NotificationRequestItem"]["eventDate"] = json!("2030-01-01T00:00:00Z");
    assert!(verifier().verify(&notification(vec![item]), now()).is_ok());
}

#[test]
fn an_unsigned_modification_action_cannot_turn_a_cancel_into_a_refund() {
    // `additionalData` is outside the HMAC: a replayed CANCEL_OR_REFUND with a rewritten action still verifies,
    // so the action must not decide what the event means.
    let events_with = |action: Option<&str>| {
        let mut item = signed_item("MOD1", "PSP1", "CANCEL_OR_REFUND", "true", 10_000);
        if let Some(action) = action {
            item["NotificationRequestItem"]["additionalData"]["modification.action"] = json!(action);
        }
        verifier().verify(&notification(vec![item]), now()).expect("additionalData is not signed")
    };
    let genuine = events_with(Some("cancel"));
    let summary: Vec<_> =
        genuine.iter().map(|e| (e.event_id.as_str(), e.kind.clone(), e.provider_reference.as_deref())).collect();
    assert_eq!(summary, vec![("MOD1:CANCEL_OR_REFUND:true", PaymentEventKind::CanceledOrRefunded, Some("PSP1"))]);
    assert_eq!(genuine[0].amount, Some(Money::from_minor(10_000, Currency::EUR)));
    for forged in [Some("refund"), None, Some("capture")] {
        assert_eq!(events_with(forged), genuine, "modification.action {forged:?}");
    }
    let failed =
        verifier().verify(&notification(vec![signed_item("MOD2", "PSP1", "CANCEL_OR_REFUND", "false", 10_000)]), now());
    assert_eq!(
        failed.ok().map(|e| e.iter().map(|e| (e.kind.clone(), e.success)).collect::<Vec<_>>()),
        Some(vec![(PaymentEventKind::Other, false)])
    );
}

#[test]
fn missing_signature_is_missing_signature() {
    let mut no_data = signed_item("PSP2", "", "AUTHORISATION", "true", 1);
    no_data["NotificationRequestItem"].as_object_mut().expect("object").remove("additionalData");
    let mut empty = signed_item("PSP3", "", "AUTHORISATION", "true", 1);
    empty["NotificationRequestItem"]["additionalData"]["hmacSignature"] = json!("");
    let mut null = signed_item("PSP4", "", "AUTHORISATION", "true", 1);
    null["NotificationRequestItem"]["additionalData"] = json!({ "hmacSignature": null });
    for bad in [no_data, empty, null] {
        let batch = notification(vec![signed_item("PSP1", "", "AUTHORISATION", "true", 1), bad]);
        let err = verifier().verify(&batch, now()).expect_err("rejected");
        assert_eq!(err.kind, WebhookErrorKind::MissingSignature);
        assert!(err.message.contains("notificationItems[1]"), "{}", err.message);
    }
}

#[test]
fn garbage_signature_is_no_valid_signature() {
    for garbage in ["not base64 at all", "AAAA", "YA9/UDjldIO4Gq68X4ATYYoEaPYH4f4k2uzBBzEF1PA="] {
        let result = verifier().verify(&notification(vec![report_item(garbage)]), now());
        assert_eq!(kind_of(result), Some(WebhookErrorKind::NoValidSignature), "{garbage}");
    }
}

#[test]
fn a_different_key_is_no_valid_signature() {
    let other = AdyenWebhookVerifier::new(Secret::new("00".repeat(32))).expect("hex");
    let result = other.verify(&notification(vec![report_item(REPORT_SIGNATURE)]), now());
    assert_eq!(kind_of(result), Some(WebhookErrorKind::NoValidSignature));
}

#[test]
fn non_hex_or_empty_key_is_invalid_secret() {
    for key in ["", "not-hex", "ABC", &KEY.replace('A', "Z")] {
        let err = AdyenWebhookVerifier::new(Secret::new(key)).err();
        assert_eq!(err.as_ref().map(|e| e.kind), Some(WebhookErrorKind::InvalidSecret), "{key:?}");
        assert!(err.is_some_and(|e| key.is_empty() || !e.to_string().contains(key)));
    }
    let fields = SignedFields::default();
    assert_eq!(signature(&Secret::new("xyz"), &fields).err().map(|e| e.kind), Some(WebhookErrorKind::InvalidSecret));
}

#[test]
fn malformed_json_or_shape_is_malformed_payload() {
    let bodies: [&[u8]; 6] = [
        b"{not json",
        b"[accepted]",
        br#"{"live":"false"}"#,
        br#"{"live":"false","notificationItems":[]}"#,
        br#"{"live":"false","notificationItems":{"NotificationRequestItem":{}}}"#,
        br#"{"live":"false","notificationItems":[{"NotificationRequestItem":"x"}]}"#,
    ];
    for body in bodies {
        let result = verifier().verify(&WebhookRequest::new(vec![], body), now());
        assert_eq!(kind_of(result), Some(WebhookErrorKind::MalformedPayload), "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn a_signed_item_without_event_code_is_malformed_payload() {
    let item = signed_item("PSP1", "", "", "true", 1);
    assert_eq!(kind_of(verifier().verify(&notification(vec![item]), now())), Some(WebhookErrorKind::MalformedPayload));
}

#[test]
fn oversized_body_is_payload_too_large() {
    let request = notification(vec![report_item(REPORT_SIGNATURE)]);
    let limit = request.body.len();
    assert!(verifier().with_max_body_bytes(limit).verify(&request, now()).is_ok());
    let result = verifier().with_max_body_bytes(limit - 1).verify(&request, now());
    assert_eq!(kind_of(result), Some(WebhookErrorKind::PayloadTooLarge));
    // The default limit (1 MiB) applies before the body is even parsed.
    let huge = WebhookRequest::new(vec![], vec![b'x'; 1024 * 1024 + 1]);
    assert_eq!(kind_of(verifier().verify(&huge, now())), Some(WebhookErrorKind::PayloadTooLarge));
}

#[test]
fn messages_never_contain_the_key_or_a_computed_signature() {
    let mut item = report_item("AAAA");
    item["NotificationRequestItem"]["pspReference"] = json!("test_REPORT_AVAILABLE");
    let err = verifier().verify(&notification(vec![item]), now()).expect_err("rejected");
    let text = err.to_string();
    assert!(!text.contains(KEY) && !text.contains(REPORT_SIGNATURE), "{text}");
    assert!(!format!("{:?}", verifier()).contains(KEY));
}

#[test]
fn ack_is_accepted_text() {
    let ack = verifier().ack();
    assert_eq!((ack.status, ack.content_type, ack.body.as_slice()), (200, "text/plain", &b"[accepted]"[..]));
    assert_eq!(verifier().provider(), "adyen");
}

proptest! {
    #[test]
    fn signed_items_verify_and_any_signed_field_change_fails(
        psp in "[A-Z0-9]{16}",
        merchant_reference in any::<String>(),
        value in 0i64..10_000_000,
        success in any::<bool>(),
        field in 0usize..4,
    ) {
        let success = if success { "true" } else { "false" };
        let value_text = value.to_string();
        let fields = SignedFields {
            psp_reference: &psp,
            merchant_account_code: "ShopCOM",
            merchant_reference: &merchant_reference,
            amount_value: &value_text,
            amount_currency: "EUR",
            event_code: "AUTHORISATION",
            success,
            ..Default::default()
        };
        let sig = signature(&Secret::new(KEY), &fields).expect("signs");
        let item = json!({ "NotificationRequestItem": {
            "pspReference": psp, "merchantAccountCode": "ShopCOM", "merchantReference": merchant_reference,
            "amount": { "value": value, "currency": "EUR" }, "eventCode": "AUTHORISATION", "success": success,
            "additionalData": { "hmacSignature": sig } } });
        let events = verifier().verify(&notification(vec![item.clone()]), now());
        let expected_id = format!("{psp}:AUTHORISATION:{success}");
        prop_assert_eq!(events.ok().map(|e| e[0].event_id.clone()), Some(expected_id));

        let mut tampered = item;
        let slot = &mut tampered["NotificationRequestItem"];
        match field {
            0 => slot["pspReference"] = json!(format!("{psp}X")),
            1 => slot["merchantReference"] = json!(format!("{merchant_reference}x")),
            2 => slot["amount"]["value"] = json!(value + 1),
            _ => slot["success"] = json!(if success == "true" { "false" } else { "true" }),
        }
        let result = verifier().verify(&notification(vec![tampered]), now());
        prop_assert_eq!(kind_of(result), Some(WebhookErrorKind::NoValidSignature));
    }
}
