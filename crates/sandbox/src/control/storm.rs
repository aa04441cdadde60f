//! A fault storm: every kind of provider failure at once on one provider, for the next
//! `calls` calls to its OAuth server and API alike, taking the kinds in turn. It sits in
//! front of the provider's routes (a middleware), so a stormed call never reaches them:
//! no token is issued, rotated or spent by a call that fails.

use super::super::{Provider, Sandbox};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// One way a call fails.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum StormKind {
    /// 503 with a JSON error.
    Unavailable,
    /// The call waits `slow_ms` before it is served (as normal): a caller that gives up
    /// first has changed nothing at the provider.
    Slow,
    /// The call is served at once (a refresh rotates) and its answer held back for
    /// `slow_ms`: a caller that gives up or dies meanwhile never learns the new tokens.
    LateAnswer,
    /// The status line and headers, then the connection closes mid-body.
    Reset,
    /// 200 with JSON cut off in the middle.
    MalformedJson,
}

/// The `storm` field of POST /sandbox/_control/faults.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StormRequest {
    pub calls: u32,
    pub kinds: Vec<StormKind>,
    #[serde(default)]
    pub slow_ms: u64,
}

/// An armed storm and what it has served.
#[derive(Default)]
pub struct Storm {
    remaining: u32,
    kinds: Vec<StormKind>,
    next: usize,
    slow_ms: u64,
    pub served: std::collections::BTreeMap<StormKind, u64>,
}

impl Storm {
    pub fn arm(&mut self, request: StormRequest) {
        self.remaining = if request.kinds.is_empty() {
            0
        } else {
            request.calls
        };
        self.kinds = request.kinds;
        self.next = 0;
        self.slow_ms = request.slow_ms;
    }

    /// The fault the next call gets, if the storm still blows.
    fn take(&mut self) -> Option<(StormKind, u64)> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let kind = self.kinds[self.next % self.kinds.len()];
        self.next += 1;
        *self.served.entry(kind).or_default() += 1;
        Some((kind, self.slow_ms))
    }
}

/// The middleware on a provider's scope.
pub async fn gate(
    sandbox: Sandbox,
    provider: Provider,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let fault = sandbox.with(provider, |state| state.faults.storm.take());
    let answer = match fault {
        None => return next.call(req).await,
        Some((StormKind::Slow, ms)) => {
            actix_web::rt::time::sleep(Duration::from_millis(ms)).await;
            return next.call(req).await;
        }
        Some((StormKind::LateAnswer, ms)) => {
            let answer = next.call(req).await;
            actix_web::rt::time::sleep(Duration::from_millis(ms)).await;
            return answer;
        }
        Some((StormKind::Unavailable, _)) => HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(r#"{"error":"temporarily_unavailable","error_description":"Injected storm"}"#),
        Some((StormKind::MalformedJson, _)) => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"access_token": "skla_at_trunc", "data": [{"id": "#),
        Some((StormKind::Reset, _)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .body(CutOff),
    };
    Ok(req.into_response(answer))
}

/// A body that promises bytes and fails before the first: the server drops the connection.
struct CutOff;

impl MessageBody for CutOff {
    type Error = std::io::Error;

    fn size(&self) -> BodySize {
        BodySize::Sized(512)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::other("storm: connection cut"))))
    }
}
