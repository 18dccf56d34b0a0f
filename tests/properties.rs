//! Property tests for the parsers that face untrusted input: the
//! `Stripe-Signature` header, event and object field extraction, and the form
//! encoder. Run with `cargo test --test properties`.

use kavachos_stripe::events::{invoice_subscription_id, CheckoutCompletion, SubscriptionSnapshot};
use kavachos_stripe::stripe::{hex, FormBody};
use kavachos_stripe::webhook::{
    compute_signature, parse_event, parse_signature_header, verify_signature,
};
use proptest::prelude::*;
use serde_json::{json, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "id",
            "event",
            "subscription",
            "active",
            "customer",
            "v2.core.event"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "id",
                        "object",
                        "type",
                        "created",
                        "data",
                        "object",
                        "customer",
                        "status",
                        "items",
                        "price",
                        "product",
                        "current_period_end",
                        "cancel_at",
                        "metadata",
                        "kavach_user_id",
                        "parent",
                        "subscription_details",
                        "subscription",
                        "mode",
                    ]),
                    inner
                ),
                0..8
            )
            .prop_map(|entries| Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect()
            )),
        ]
    })
}

/// A minimal `application/x-www-form-urlencoded` decoder, to check the encoder.
fn decode_component(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn header_parser_never_panics(header in ".{0,200}") {
        let _ = parse_signature_header(&header);
    }

    #[test]
    fn header_parser_reads_what_stripe_writes(t in 0i64..=9_999_999_999, sigs in prop::collection::vec(prop::array::uniform32(any::<u8>()), 1..4), extra in prop::collection::vec("[a-su-uw-z][a-z0-9]{0,4}=[a-z0-9]{0,8}", 0..3)) {
        let mut parts = vec![format!("t={t}")];
        parts.extend(sigs.iter().map(|s| format!("v1={}", hex(s))));
        parts.extend(extra);
        let parsed = parse_signature_header(&parts.join(",")).unwrap();
        prop_assert_eq!(parsed.timestamp, t);
        prop_assert_eq!(parsed.v1, sigs.into_iter().map(Some).collect::<Vec<_>>());
    }

    #[test]
    fn a_signature_verifies_exactly_its_payload(payload in prop::collection::vec(any::<u8>(), 0..512), secret in "whsec_[A-Za-z0-9]{1,40}", t in 1_000_000_000i64..2_000_000_000, flip in any::<prop::sample::Index>()) {
        let header = format!("t={t},v1={}", hex(&compute_signature(&secret, t, &payload)));
        prop_assert!(verify_signature(&payload, &header, &[&secret], 300, t).is_ok());
        if !payload.is_empty() {
            let mut tampered = payload.clone();
            let i = flip.index(tampered.len());
            tampered[i] ^= 0x01;
            prop_assert_eq!(verify_signature(&tampered, &header, &[&secret], 300, t).unwrap_err().code(), "signature_mismatch");
        }
        prop_assert_eq!(verify_signature(&payload, &header, &[&secret], 300, t + 301).unwrap_err().code(), "timestamp_out_of_tolerance");
    }

    #[test]
    fn field_extraction_never_panics(value in json_value()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let _ = parse_event(&bytes);
        let _ = SubscriptionSnapshot::from_json(&value);
        let _ = CheckoutCompletion::from_json(&value);
        let _ = invoice_subscription_id(&value);
    }

    #[test]
    fn event_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_event(&bytes);
    }

    #[test]
    fn subscription_fields_round_trip(id in "sub_[A-Za-z0-9]{1,20}", customer in "cus_[A-Za-z0-9]{1,20}", status in prop::sample::select(vec!["active", "trialing", "past_due", "canceled", "unpaid", "paused", "incomplete", "incomplete_expired"]), ends in prop::collection::vec(0i64..4_000_000_000, 1..5), created in 0i64..4_000_000_000, legacy in any::<bool>()) {
        let items: Vec<Value> = ends.iter().enumerate().map(|(i, end)| {
            let mut item = json!({ "price": { "id": format!("price_{i}"), "product": format!("prod_{i}") }, "quantity": 1 });
            if !legacy { item["current_period_end"] = json!(end); }
            item
        }).collect();
        let mut object = json!({ "id": id, "object": "subscription", "customer": customer, "status": status, "created": created, "items": { "data": items } });
        if legacy { object["current_period_end"] = json!(ends[0]); }
        let snapshot = SubscriptionSnapshot::from_json(&object).unwrap();
        prop_assert_eq!(&snapshot.id, &id);
        prop_assert_eq!(&snapshot.customer_id, &customer);
        prop_assert_eq!(snapshot.status.as_str(), status);
        prop_assert_eq!(snapshot.items.len(), ends.len());
        let main = snapshot.main_item().unwrap();
        let expected_end = if legacy { ends[0] } else { *ends.iter().max().unwrap() };
        prop_assert_eq!(main.current_period_end, Some(expected_end));
        let first_with_max = if legacy { 0 } else { ends.iter().position(|e| *e == expected_end).unwrap() };
        prop_assert_eq!(main.price.clone(), Some(format!("price_{first_with_max}")));
    }

    #[test]
    fn form_encoding_round_trips(fields in prop::collection::vec(("[a-z_]{1,8}(\\[[a-z0-9_]{1,6}\\]){0,3}", ".{0,40}"), 0..8)) {
        let mut form = FormBody::new();
        for (key, value) in &fields {
            form.push(key.clone(), value.clone());
        }
        let encoded = form.encode();
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%&=[]".contains(&b)), "{}", encoded);
        let decoded: Vec<(String, String)> = if encoded.is_empty() { Vec::new() } else {
            encoded.split('&').map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (decode_component(k).unwrap(), decode_component(v).unwrap())
            }).collect()
        };
        prop_assert_eq!(decoded, fields);
    }
}
