//! Keys for tests, created through a [`Keyward`] handle.

use keyward::{KeyId, Keyward, NewKey};

/// Creates a key through `keyward`: its id and its token.
///
/// # Example
///
/// ```
/// use keyward::{Keyward, MemoryStore, NewKey};
/// use keyward_test_support::issue;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let keyward = Keyward::builder(MemoryStore::new()).prefix("books").build().unwrap();
/// let (_, token) = issue(&keyward, NewKey::service("ci").scopes(["*"])).await;
/// assert!(token.starts_with("books_"));
/// # }
/// ```
///
/// # Panics
///
/// When the key cannot be created.
pub async fn issue(keyward: &Keyward, new: NewKey) -> (KeyId, String) {
    let issued = keyward.create(new).await.expect("the key is created");
    (issued.record.id, issued.token.expose_secret().to_owned())
}
