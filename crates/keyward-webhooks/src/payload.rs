//! What is POSTed: the event as JSON.

use chrono::{DateTime, Utc};
use keyward_core::{ChangeKind, ChangeRecord, EventView};
use serde::{Deserialize, Serialize};

/// The JSON body of a webhook request: `{"type": "key.<event type>", "timestamp": <RFC 3339>,
/// "data": <the event as GET /events shows it>}`. It never holds a token or any other
/// secret. Receivers can deserialize it.
///
/// # Example
///
/// ```
/// use chrono::Utc;
/// use keyward_core::{ChangeKind, ChangeRecord, KeyId};
/// use keyward_webhooks::WebhookPayload;
///
/// let change = ChangeRecord::key(7, KeyId::new(), Some("alice".into()), ChangeKind::Revoked, Utc::now());
/// let payload = WebhookPayload::from_change(&change).expect("a key event");
/// assert_eq!(payload.kind, "key.revoked");
/// assert_eq!(payload.data.id, "7");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookPayload {
    /// `key.` and the event's type: `key.created`, `key.revoked`, `key.expiring_soon`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// When the event happened.
    pub timestamp: DateTime<Utc>,
    /// The event.
    pub data: EventView,
}

impl WebhookPayload {
    /// The payload of `change`; `None` when it is not a key event (a change of what an owner
    /// holds, which is sent to no one).
    #[must_use]
    pub fn from_change(change: &ChangeRecord) -> Option<Self> {
        if change.kind == ChangeKind::Owner || change.key_id.is_none() {
            return None;
        }
        Some(Self {
            kind: format!("key.{}", change.kind),
            timestamp: change.at,
            data: change.view(),
        })
    }

    /// The `webhook-id` of the payload's event: `msg_<event id>`, the same on every attempt.
    #[must_use]
    pub fn message_id(&self) -> String {
        format!("msg_{}", self.data.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::KeyId;

    #[test]
    fn owner_changes_are_not_sent() {
        let change = ChangeRecord::owner(3, "alice", Utc::now());
        assert_eq!(WebhookPayload::from_change(&change), None);
    }

    #[test]
    fn the_body_names_the_event() {
        let id = KeyId::new();
        let change = ChangeRecord::key(12, id, None, ChangeKind::ExpiringSoon, Utc::now());
        let payload = WebhookPayload::from_change(&change).unwrap();
        let json = serde_json::to_value(&payload).unwrap();
        assert_eq!(json["type"], "key.expiring_soon");
        assert_eq!(json["data"]["type"], "expiring_soon");
        assert_eq!(json["data"]["key_id"], id.to_string());
        assert_eq!(json["data"]["id"], "12");
        assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(payload.message_id(), "msg_12");
    }
}
