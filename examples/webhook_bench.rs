//! The load side of scripts/bench-webhooks.sh: a local receiver, and a producer of events
//! through a running connecthub (`POST /api/v1/webhook-endpoints/{id}/test`, a real
//! change written with its outbox row in one transaction). Measures, in one run:
//! - baseline: the same producer POSTing straight to the receiver (no connecthub);
//! - throughput: N events produced as fast as possible, events/s until all arrived;
//! - latency at a fixed rate: change (the event's timestamp) → receiver, p50 / p99.
//!
//! Usage: webhook_bench <connecthub base URL> <service key (webhooks:write)> [events] [rate] [seconds]

use actix_web::{web, App, HttpResponse, HttpServer};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    duplicates: usize,
    latencies_ms: Vec<f64>,
}

async fn receive(
    body: web::Bytes,
    req: actix_web::HttpRequest,
    seen: web::Data<Mutex<Seen>>,
) -> HttpResponse {
    let now = chrono::Utc::now();
    let id = req
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("direct")
        .to_string();
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let created = value["timestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let mut seen = seen.lock().unwrap();
    if id != "direct" && !seen.ids.insert(id) {
        seen.duplicates += 1;
    }
    if let Some(created) = created {
        seen.latencies_ms.push(
            (now - created.with_timezone(&chrono::Utc))
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1000.0,
        );
    }
    HttpResponse::Ok().body("ok")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

struct Bench {
    client: reqwest::Client,
    seen: Arc<Mutex<Seen>>,
    receiver: String,
}

impl Bench {
    fn reset(&self) {
        *self.seen.lock().unwrap() = Seen::default();
    }

    fn received(&self) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.latencies_ms.len()
    }

    async fn wait_for(&self, n: usize, limit: Duration) -> Duration {
        let started = Instant::now();
        while self.received() < n && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        started.elapsed()
    }

    fn latencies(&self) -> (f64, f64, usize) {
        let seen = self.seen.lock().unwrap();
        let mut sorted = seen.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        (
            percentile(&sorted, 0.50),
            percentile(&sorted, 0.99),
            seen.duplicates,
        )
    }

    /// One event: through connecthub (`target` = its test-event URL) or straight to the
    /// receiver with a body stamped now (the baseline).
    async fn produce(&self, target: &Option<(String, String)>) {
        let request = match target {
            Some((url, key)) => self.client.post(url).bearer_auth(key),
            None => {
                let body = serde_json::json!({"timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)});
                self.client.post(&self.receiver).json(&body)
            }
        };
        let _ = request.send().await;
    }

    /// `events` produced 16 at a time; events/s from the first send to the last arrival.
    async fn throughput(&self, target: &Option<(String, String)>, events: usize) -> f64 {
        use futures_util::StreamExt;
        self.reset();
        let started = Instant::now();
        futures_util::stream::iter(0..events)
            .for_each_concurrent(16, |_| self.produce(target))
            .await;
        self.wait_for(events, Duration::from_secs(300)).await;
        self.received() as f64 / started.elapsed().as_secs_f64()
    }

    /// `rate` events a second for `seconds`; latencies of what arrived.
    async fn at_rate(
        &self,
        target: &Option<(String, String)>,
        rate: u64,
        seconds: u64,
    ) -> (f64, f64, usize, usize) {
        self.reset();
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        let total = (rate * seconds) as usize;
        let mut sends = Vec::with_capacity(total);
        for _ in 0..total {
            tick.tick().await;
            let (bench, target) = (self.clone_handle(), target.clone());
            sends.push(tokio::spawn(async move { bench.produce(&target).await }));
        }
        for send in sends {
            let _ = send.await;
        }
        self.wait_for(total, Duration::from_secs(60)).await;
        let (p50, p99, duplicates) = self.latencies();
        (p50, p99, self.received(), duplicates)
    }

    fn clone_handle(&self) -> Arc<Bench> {
        Arc::new(Bench {
            client: self.client.clone(),
            seen: self.seen.clone(),
            receiver: self.receiver.clone(),
        })
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let base = args
        .get(1)
        .expect("connecthub base URL")
        .trim_end_matches('/')
        .to_string();
    let key = args
        .get(2)
        .expect("a service key with webhooks:write")
        .clone();
    let events: usize = args.get(3).map_or(2000, |a| a.parse().unwrap());
    let rate: u64 = args.get(4).map_or(100, |a| a.parse().unwrap());
    let seconds: u64 = args.get(5).map_or(20, |a| a.parse().unwrap());

    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = web::Data::from(seen.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let receiver = format!("http://127.0.0.1:{}/hooks", listener.local_addr()?.port());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .default_service(web::to(receive))
    })
    .workers(1)
    .listen(listener)?
    .run();
    actix_web::rt::spawn(server);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let bench = Bench {
        client: client.clone(),
        seen,
        receiver: receiver.clone(),
    };

    let created: serde_json::Value = client
        .post(format!("{base}/api/v1/webhook-endpoints"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"url": receiver, "description": "bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"].as_str().expect("an endpoint id");
    let through = Some((
        format!("{base}/api/v1/webhook-endpoints/{id}/test"),
        key.clone(),
    ));

    let direct_rps = bench.throughput(&None, events).await;
    let (d50, d99, _, _) = bench.at_rate(&None, rate, seconds.min(5)).await;
    let hub_rps = bench.throughput(&through, events).await;
    let (h50, h99, arrived, duplicates) = bench.at_rate(&through, rate, seconds).await;
    println!("baseline   throughput {direct_rps:8.0} events/s   at {rate}/s: p50 {d50:7.2} ms  p99 {d99:7.2} ms");
    println!("connecthub throughput {hub_rps:8.0} events/s   at {rate}/s: p50 {h50:7.2} ms  p99 {h99:7.2} ms  ({arrived} of {} arrived, {duplicates} twice)", rate * seconds);
    println!(
        "ratio      throughput {:8.3}                p50 x{:.1}  p99 x{:.1}",
        hub_rps / direct_rps,
        h50 / d50,
        h99 / d99
    );
    Ok(())
}
