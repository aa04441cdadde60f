//! `POST /sandbox/_control/webhooks`: makes the sandbox send a webhook the way the real
//! provider does, signed with the secret given, to the URL given; answers what the
//! receiver said. Klaviyo: a system webhook body (`data` of topic events, `meta` with the
//! company id), `Klaviyo-Webhook-Id`, `Klaviyo-Timestamp` and `Klaviyo-Signature` (hex
//! HMAC-SHA256 of body then timestamp). Kustomer: an event body with `orgId` and
//! `X-Kustomer-Signature` (hex HMAC-SHA256 of the body).

use super::super::http::json;
use super::super::Provider;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    provider: String,
    url: String,
    secret: String,
    /// The Klaviyo account (company) or Kustomer org the event is about.
    account_id: String,
    /// Sign with a wrong key, as a forger would.
    #[serde(default)]
    forge: bool,
    /// The event type: Klaviyo's topic (default `event:klaviyo.opened_email`), Kustomer's
    /// event name (default `kustomer.conversation.create`).
    event: Option<String>,
}

fn hex_hmac(secret: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The body and headers the real provider would send.
fn build(provider: Provider, req: &SendRequest) -> (String, Vec<(&'static str, String)>) {
    let id = uuid::Uuid::new_v4().to_string();
    let now = chrono::Utc::now();
    let key = if req.forge {
        "forged-secret-forged"
    } else {
        req.secret.as_str()
    };
    match provider {
        Provider::Klaviyo => {
            let body = json!({
                "data": [{
                    "topic": req.event.as_deref().unwrap_or("event:klaviyo.opened_email"),
                    "external_id": id,
                    "payload": {"type": "event", "id": id, "attributes": {"metric_id": "OpenedEmail", "datetime": now.to_rfc3339()}},
                }],
                "meta": {"klaviyo_webhook_id": "sandbox-webhook", "version": "2024-10-15", "company_id": req.account_id},
            })
            .to_string();
            let timestamp = now.timestamp().to_string();
            let signature = hex_hmac(key.as_bytes(), &[body.as_bytes(), timestamp.as_bytes()]);
            let headers = vec![
                ("Klaviyo-Webhook-Id", "sandbox-webhook".to_string()),
                ("Klaviyo-Timestamp", timestamp),
                ("Klaviyo-Signature", signature),
            ];
            (body, headers)
        }
        Provider::Kustomer => {
            let body = json!({
                "id": id,
                "name": req.event.as_deref().unwrap_or("kustomer.conversation.create"),
                "orgId": req.account_id,
                "createdAt": now.to_rfc3339(),
                "data": {"type": "conversation", "id": id, "attributes": {"name": "A new conversation", "channels": ["chat"]}},
            })
            .to_string();
            let signature = hex_hmac(key.as_bytes(), &[body.as_bytes()]);
            (body, vec![("X-Kustomer-Signature", signature)])
        }
    }
}

pub async fn send(req: web::Json<SendRequest>) -> HttpResponse {
    let Some(provider) = Provider::from_name(&req.provider) else {
        return json(
            StatusCode::BAD_REQUEST,
            json!({"ok": false, "error": "provider must be \"klaviyo\" or \"kustomer\""}),
        );
    };
    if !(req.url.starts_with("http://") || req.url.starts_with("https://")) {
        return json(
            StatusCode::BAD_REQUEST,
            json!({"ok": false, "error": "url must be http(s)"}),
        );
    }
    let (body, headers) = build(provider, &req);
    let mut request = reqwest::Client::new()
        .post(&req.url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    match request
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            json(
                StatusCode::OK,
                json!({"ok": true, "status": status, "answer": answer}),
            )
        }
        Err(e) => json(
            StatusCode::BAD_GATEWAY,
            json!({"ok": false, "error": e.to_string()}),
        ),
    }
}
