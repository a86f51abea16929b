//! The store conformance suite on `MemoryStore`.

use keyward_core::MemoryStore;

#[allow(clippy::unused_async)]
async fn memory_store() -> Option<MemoryStore> {
    Some(MemoryStore::new())
}

keyward_core::conformance_tests!(memory_store);
