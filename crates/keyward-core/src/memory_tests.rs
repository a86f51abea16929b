//! Tests of the `MemoryStore` beyond the conformance suite.
use futures_util::FutureExt;

use super::*;

#[test]
fn a_cursor_older_than_the_kept_changes_is_told_so() {
    let store = MemoryStore::new().change_log_capacity(2);
    let read = |after| {
        store
            .changes_since(after, 10)
            .now_or_never()
            .expect("never waits")
            .expect("no error")
            .expect("a log")
    };
    let head = read(None).cursor;
    for owner in ["a", "b"] {
        store
            .owner_changed(owner)
            .now_or_never()
            .expect("ready")
            .expect("ok");
    }
    let batch = read(Some(head.clone()));
    assert!(!batch.truncated, "two changes fit");
    assert_eq!(batch.changes.len(), 2);
    store
        .owner_changed("c")
        .now_or_never()
        .expect("ready")
        .expect("ok");
    let batch = read(Some(head));
    assert!(batch.truncated, "the first change was dropped");
    assert_eq!(batch.cursor.seq(), 3);
    assert!(!read(Some(batch.cursor)).truncated);
}
