//! The team's webhook receiver, as a test runs it: a real HTTP server on a random port that
//! records every delivery and answers with the statuses a test scripts (200 by default).
//! Signatures are checked with the `standardwebhooks` crate, never with connecthub's code.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    pub at: Instant,
}

impl Delivery {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_string()
    }

    /// Whether `secret` verifies this delivery (Standard Webhooks, with its crate).
    pub fn verifies_with(&self, secret: &str) -> bool {
        standardwebhooks::Webhook::new(secret)
            .expect("a whsec_ secret")
            .verify(self.body.as_bytes(), &self.headers)
            .is_ok()
    }
}

#[derive(Default)]
struct Script {
    /// Answers to give, first to last; 200 once empty.
    answers: VecDeque<(u16, Option<&'static str>)>,
    received: Vec<Delivery>,
    /// Hold the first `hang.0` answers this long (a receiver that hangs).
    hang: (usize, Duration),
}

pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<Script>>,
    server: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = web::Data::from(script.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .disable_signals()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hooks"),
            script,
            server: handle,
        }
    }

    /// The next answers, in order (`(503, Some("1"))` = 503 with Retry-After: 1).
    pub fn answer(&self, answers: &[(u16, Option<&'static str>)]) {
        self.script
            .lock()
            .unwrap()
            .answers
            .extend(answers.iter().copied());
    }

    /// The first `n` requests get their answer only after `delay`.
    pub fn hang_first(&self, n: usize, delay: Duration) {
        self.script.lock().unwrap().hang = (n, delay);
    }

    pub fn received(&self) -> Vec<Delivery> {
        self.script.lock().unwrap().received.clone()
    }

    /// Waits (up to `limit`) until `n` deliveries have arrived.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Delivery> {
        let started = Instant::now();
        loop {
            let received = self.received();
            if received.len() >= n || started.elapsed() > limit {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a delivery of this event type arrived; panics after 10 s.
    pub async fn wait_for_type(&self, event_type: &str) -> Delivery {
        let started = Instant::now();
        loop {
            if let Some(found) = self
                .received()
                .into_iter()
                .find(|d| d.event_type() == event_type)
            {
                return found;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no {event_type} arrived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    script: web::Data<Mutex<Script>>,
) -> HttpResponse {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in req.headers() {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()),
            reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (answer, delay) = {
        let mut script = script.lock().unwrap();
        script.received.push(Delivery {
            id,
            headers,
            body: String::from_utf8_lossy(&body).into(),
            at: Instant::now(),
        });
        let delay = (script.received.len() <= script.hang.0).then_some(script.hang.1);
        (script.answers.pop_front().unwrap_or((200, None)), delay)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut response =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(answer.0).unwrap());
    if let Some(retry_after) = answer.1 {
        response.insert_header(("Retry-After", retry_after));
    }
    response.body("ok")
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}
