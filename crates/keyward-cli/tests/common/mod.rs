//! What the command-line tests share: reading a finished run, and recording an application's
//! settings in a database as the application does when it starts.

use std::process::Output;

use keyward_core::{AppSettings, KeyStore};
use keyward_sea_orm::SeaOrmStore;

/// A finished run: its exit code, stdout and stderr.
pub(crate) fn outcome(output: Output) -> (i32, String, String) {
    (
        output.status.code().expect("the command ended by itself"),
        String::from_utf8(output.stdout).expect("UTF-8 output"),
        String::from_utf8(output.stderr).expect("UTF-8 errors"),
    )
}

/// Records `settings` in the database at `url`, as a starting application does.
pub(crate) fn record_settings(url: &str, settings: &AppSettings) {
    let url = url.to_owned();
    let settings = settings.clone();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async move {
            let store = SeaOrmStore::connect(url.as_str()).await.expect("connect");
            store.record_settings(&settings).await.expect("record");
            store.connection().clone().close().await.expect("close");
        });
}
