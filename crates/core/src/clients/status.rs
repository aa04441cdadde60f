//! Where a connection stands. Stored as text (`active`, `needs_reauth`, `error`,
//! `disconnected`; a CHECK constraint keeps the column to these), compared in code only as
//! this type.

/// A client's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientStatus {
    /// Tokens work.
    Active,
    /// The grant or key was refused: the owner must connect the account again.
    NeedsReauth,
    /// The token expired and could not be refreshed yet (the provider failed); retried.
    Error,
    /// Disconnected by its owner or an admin; kept for its history.
    Disconnected,
}

impl ClientStatus {
    pub const ALL: [ClientStatus; 4] = [
        ClientStatus::Active,
        ClientStatus::NeedsReauth,
        ClientStatus::Error,
        ClientStatus::Disconnected,
    ];

    /// As stored, and as the service API and the list's filter write it.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Active => "active",
            ClientStatus::NeedsReauth => "needs_reauth",
            ClientStatus::Error => "error",
            ClientStatus::Disconnected => "disconnected",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == raw)
    }

    /// The status as people read it.
    pub fn label(self) -> &'static str {
        match self {
            ClientStatus::Active => "Active",
            ClientStatus::NeedsReauth => "Reconnect needed",
            ClientStatus::Error => "Error",
            ClientStatus::Disconnected => "Disconnected",
        }
    }

    pub fn is_active(self) -> bool {
        self == ClientStatus::Active
    }

    pub fn is_needs_reauth(self) -> bool {
        self == ClientStatus::NeedsReauth
    }

    pub fn is_disconnected(self) -> bool {
        self == ClientStatus::Disconnected
    }

    /// Whether connecthub holds a grant it may use or try to refresh: active, or in error
    /// after a failed refresh.
    pub fn has_grant(self) -> bool {
        matches!(self, ClientStatus::Active | ClientStatus::Error)
    }
}

impl std::fmt::Display for ClientStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads the stored text (`#[diesel(deserialize_as = String)]`).
impl TryFrom<String> for ClientStatus {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw).ok_or_else(|| format!("unknown client status {raw:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::ClientStatus;

    #[test]
    fn every_status_reads_back_as_itself() {
        for status in ClientStatus::ALL {
            assert_eq!(ClientStatus::try_from(status.to_string()), Ok(status));
        }
        assert!(ClientStatus::try_from("paused".to_string()).is_err());
    }
}
