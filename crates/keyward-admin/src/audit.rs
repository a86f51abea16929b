//! Audit events: one `tracing` event per change, on the target `keyward::audit`.

use keyward_core::KeyId;

use keyward::Principal;

/// Records that `actor` did `action` to key `key_id`. Never carries a token.
pub(crate) fn event(actor: &Principal, key_id: KeyId, action: &'static str) {
    tracing::info!(
        target: "keyward::audit",
        actor = %actor,
        key_id = %key_id,
        action,
        "api key {action}",
    );
}
