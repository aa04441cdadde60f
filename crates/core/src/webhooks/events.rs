//! The event catalogue: each event's stable type name and what it means.

/// Every event connecthub sends. The names are a contract with receivers: never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ConnectionCreated,
    ConnectionReconnected,
    ConnectionRefreshFailed,
    ConnectionNeedsReauth,
    ConnectionRecovered,
    ConnectionDisconnected,
    AlertRefreshFailureRate,
    ConnectSessionCompleted,
    ConnectSessionFailed,
    ProviderWebhook,
    AuditHead,
    SyncSucceeded,
    SyncFailed,
    /// Sent only to the endpoint whose "Send test event" was pressed.
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 14] = [
        EventType::ConnectionCreated,
        EventType::ConnectionReconnected,
        EventType::ConnectionRefreshFailed,
        EventType::ConnectionNeedsReauth,
        EventType::ConnectionRecovered,
        EventType::ConnectionDisconnected,
        EventType::AlertRefreshFailureRate,
        EventType::ConnectSessionCompleted,
        EventType::ConnectSessionFailed,
        EventType::ProviderWebhook,
        EventType::AuditHead,
        EventType::SyncSucceeded,
        EventType::SyncFailed,
        EventType::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ConnectionCreated => "connection.created",
            EventType::ConnectionReconnected => "connection.reconnected",
            EventType::ConnectionRefreshFailed => "connection.refresh_failed",
            EventType::ConnectionNeedsReauth => "connection.needs_reauth",
            EventType::ConnectionRecovered => "connection.recovered",
            EventType::ConnectionDisconnected => "connection.disconnected",
            EventType::AlertRefreshFailureRate => "alert.refresh_failure_rate",
            EventType::ConnectSessionCompleted => "connect_session.completed",
            EventType::ConnectSessionFailed => "connect_session.failed",
            EventType::ProviderWebhook => "provider.webhook",
            EventType::AuditHead => "audit.head",
            EventType::SyncSucceeded => "sync.succeeded",
            EventType::SyncFailed => "sync.failed",
            EventType::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    /// What the event means, as the endpoint form explains it.
    pub fn description(self) -> &'static str {
        match self {
            EventType::ConnectionCreated => "an account was connected for the first time",
            EventType::ConnectionReconnected => "an account already connected was connected again",
            EventType::ConnectionRefreshFailed => {
                "a token refresh failed (the streak so far is in the body)"
            }
            EventType::ConnectionNeedsReauth => {
                "the provider refused the grant: the account must be reconnected"
            }
            EventType::ConnectionRecovered => {
                "a refresh succeeded again after failures (the provider was down, say)"
            }
            EventType::ConnectionDisconnected => {
                "the connection was disconnected and its secrets destroyed"
            }
            EventType::AlertRefreshFailureRate => {
                "more than 5 % of token refreshes failed in the last 5 minutes"
            }
            EventType::ConnectSessionCompleted => {
                "an end user connected an account through a connect session"
            }
            EventType::ConnectSessionFailed => {
                "an end user's attempt in a connect session failed (the session may be tried again)"
            }
            EventType::ProviderWebhook => "a provider sent connecthub a webhook for the connection",
            EventType::AuditHead => {
                "the audit log's head (entry count and newest hash), published every AUDIT_HEAD_INTERVAL_SECS: keep it to detect a cut-off log with audit verify --expect-head"
            }
            EventType::SyncSucceeded => {
                "a sync run of one model ended (counts added/updated/deleted, duration)"
            }
            EventType::SyncFailed => "a sync has failed several runs in a row (reason given)",
            EventType::WebhookTest => "the Send test event button (always sent)",
        }
    }

    /// Types an endpoint can subscribe to (the test event always goes to its endpoint).
    pub fn subscribable() -> impl Iterator<Item = EventType> {
        Self::ALL
            .into_iter()
            .filter(|t| *t != EventType::WebhookTest)
    }
}
