//! `keyward`: manage an application's API keys from the command line.
//!
//! ```text
//! export DATABASE_URL=sqlite://books.db        # the application's database
//! keyward migrate                              # only if the application does not migrate
//! keyward create --name "Backup Script" --scope books:read --owner alice
//! keyward list --json
//! echo "$TOKEN" | keyward verify
//! keyward scan . --revoke                      # revoke the keys whose tokens are in files
//! keyward events --key <id>                    # who changed this key, when, from where
//! keyward rules --gitleaks >> .gitleaks.toml   # detection rules for the app's tokens
//! ```
//!
//! The application records its settings (token prefixes, scope catalog, pepper fingerprint)
//! in the database when it starts; the commands use them, so a key made here works in the
//! application without further flags.
//!
//! Exit codes: 0 success, 1 the key was not found or is not usable, 2 usage error
//! (bad arguments, invalid input, a prefix, scope or pepper the application does not use),
//! 3 the database failed, does not exist or lacks keyward's tables.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use keyward_core::{
    EventContext, Expiry, GracePeriod, IssuedKey, KeyId, KeyRecord, KeyStore, KeyUpdate,
    ListCursor, ListQuery, NewKey, Prefix, ScopeCatalog, ScopeSet, SecretRotation, StoreError,
    Token, TokenHasher, policy,
};
use keyward_sea_orm::SeaOrmStore;

use crate::app::App;

mod app;
mod database;
mod events;
mod output;
mod rules;
mod scan;

/// Recorded as who disabled a key disabled here: the key's owner cannot enable it again from
/// the application's page, an administrator (or `keyward enable`) can.
const CLI_ACTOR: &str = "keyward-cli";

const AFTER_HELP: &str = "\
Environment:
  DATABASE_URL    the application's database (as --database-url); only `migrate` creates a
                  SQLite file that does not exist
  KEYWARD_PREFIX  the prefix of new tokens (as --prefix)
  KEYWARD_PEPPER  the application's HMAC pepper, if it uses one; read from the environment
                  only, never from the command line, and never printed

The application records its token prefixes, scope catalog and a fingerprint of its pepper in
the database when it starts. `create` and `regenerate` use its prefix and `create` only its
scopes; `create`, `regenerate` and `verify` stop when KEYWARD_PEPPER does not match the
application's pepper.

Exit codes: 0 success, 1 not found or not usable, 2 usage error (including a prefix, scope or
pepper the application does not use), 3 the database failed, does not exist or lacks
keyward's tables (run `keyward migrate`).";

/// Manage keyward API keys in an application's database.
#[derive(Debug, Parser)]
#[command(name = "keyward", version, about, long_about = None, after_help = AFTER_HELP)]
struct Cli {
    /// Database URL (sqlite://, postgres:// or mysql://).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = database::DEFAULT_URL,
        global = true
    )]
    database_url: String,

    /// Prefix of new tokens [default: the application's].
    ///
    /// The application records its prefixes when it starts; one given here must be among
    /// them. Before any application has started on the database, `create` needs it.
    #[arg(long, env = "KEYWARD_PREFIX", global = true)]
    prefix: Option<Prefix>,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or upgrade keyward's tables (idempotent).
    Migrate,
    /// Create a key and print its token once on stdout.
    Create(CreateArgs),
    /// List keys, newest first.
    List(ListArgs),
    /// Show one key.
    Show {
        /// The key's id.
        id: KeyId,
    },
    /// Revoke a key; it stays listed but never works again.
    Revoke {
        /// The key's id.
        id: KeyId,
    },
    /// Delete a key permanently.
    Delete {
        /// The key's id.
        id: KeyId,
    },
    /// Give a key a new secret and print the new token once on stdout.
    Regenerate {
        /// The key's id.
        id: KeyId,
        /// Keep the old token working this many seconds (at most 86400).
        #[arg(long, default_value_t = 0)]
        grace_seconds: u32,
    },
    /// Extend a key's expiry by its lifetime.
    Refresh {
        /// The key's id.
        id: KeyId,
    },
    /// Disable a key until it is enabled again.
    ///
    /// Its owner cannot enable it from the application's page; an administrator, or
    /// `keyward enable`, can.
    Disable {
        /// The key's id.
        id: KeyId,
    },
    /// Enable a disabled key.
    Enable {
        /// The key's id.
        id: KeyId,
    },
    /// Read a token on stdin and say which key it is and whether it is usable.
    Verify,
    /// Show key events, newest first: who created, changed, revoked or deleted which key,
    /// when and from where, expiry notices and leaks.
    Events(events::EventsArgs),
    /// Find the application's tokens in files and say whose keys they are and whether they
    /// are live (exit 1 when a live key is found and left live).
    ///
    /// Prints `file:line  key-id  hint  live|revoked|unknown`. Directories are searched
    /// recursively, except `.git`, `target` and `node_modules`; binary files and files over
    /// 16 MiB are skipped. Strings shaped like tokens whose check digits fail are ignored.
    Scan(ScanArgs),
    /// Print detection rules for the application's tokens: a gitleaks rule or a GitHub
    /// custom secret-scanning pattern.
    ///
    /// With --prefix the rules are for that prefix and the database is not read; otherwise
    /// they cover every prefix the application accepts.
    Rules(RulesArgs),
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// Files or directories to search.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Revoke the live keys found.
    #[arg(long)]
    revoke: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct RulesArgs {
    /// A gitleaks rule (`[[rules]]` TOML, for `.gitleaks.toml`).
    #[arg(long)]
    gitleaks: bool,
    /// A GitHub custom secret-scanning pattern: secret format, before and after.
    #[arg(long)]
    github: bool,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// A name people recognise, e.g. "Backup Script".
    #[arg(long)]
    name: String,
    /// A scope to grant, one of the application's; repeat for several.
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// The user the key acts for.
    #[arg(long, conflicts_with = "service", required_unless_present = "service")]
    owner: Option<String>,
    /// A service key, acting for no user.
    #[arg(long)]
    service: bool,
    /// Expire after 7, 30, 60, 90 or 180 days (default 30).
    #[arg(long, conflicts_with = "never")]
    expires_in_days: Option<u32>,
    /// Never expire.
    #[arg(long)]
    never: bool,
    /// Allowed client IP or CIDR; repeat for several (default: any).
    #[arg(long = "allow-ip")]
    allowed_ips: Vec<String>,
    /// Requests per minute.
    #[arg(long)]
    rate_limit: Option<u32>,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only this owner's keys.
    #[arg(long)]
    owner: Option<String>,
    /// Include revoked keys.
    #[arg(long)]
    include_revoked: bool,
}

/// How a command failed, and the exit code it maps to.
#[derive(Debug)]
enum Failure {
    /// Bad input: exit 2.
    Usage(String),
    /// Not found or not usable: exit 1.
    No(String),
    /// The database failed: exit 3.
    Store(StoreError),
    /// The database is missing or lacks keyward's tables: exit 3.
    Database(String),
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        if err.is_not_found() {
            Self::No(err.to_string())
        } else if err.kind() == keyward_core::StoreErrorKind::Conflict {
            Self::Usage(err.to_string())
        } else {
            Self::Store(err)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::No(message)) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
        Err(Failure::Store(err)) => {
            eprintln!("error: {}", output::error_chain(&err));
            ExitCode::from(3)
        }
        Err(Failure::Database(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(3)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    if let (Command::Rules(args), Some(prefix)) = (&cli.command, &cli.prefix) {
        rules::print(std::slice::from_ref(prefix), args.gitleaks, cli.json);
        return Ok(ExitCode::SUCCESS);
    }
    let hasher = app::pepper_from_env()?.map_or_else(TokenHasher::sha256, TokenHasher::hmac);
    let migrating = matches!(cli.command, Command::Migrate);
    let db = database::connect(&cli.database_url, migrating).await?;
    if migrating {
        keyward_sea_orm::migrate(&db).await?;
        output::done(cli.json, "migrations applied");
        return Ok(ExitCode::SUCCESS);
    }
    database::ensure_tables(&db, &cli.database_url).await?;
    let store = SeaOrmStore::new(db);
    let app = App::new(store.settings().await?);
    let json = cli.json;
    let now = Utc::now();
    match cli.command {
        // Answered before the tables were checked.
        Command::Migrate => unreachable!("migrate is handled above"),
        Command::Create(args) => {
            app.check_pepper(&hasher)?;
            let issued = create(&store, &app, cli.prefix.as_ref(), &hasher, args).await?;
            output::issued(json, &issued);
        }
        Command::List(args) => {
            let keys = list_all(&store, args).await?;
            output::list(json, &keys, now);
        }
        Command::Show { id } => {
            let key = store
                .get(id)
                .await?
                .ok_or_else(|| Failure::No(format!("no key with id {id}")))?;
            output::key(json, &key, now);
        }
        Command::Revoke { id } => output::key(
            json,
            &store.revoke(id, now, &EventContext::cli()).await?,
            now,
        ),
        Command::Delete { id } => {
            store.delete(id, &EventContext::cli()).await?;
            output::done(json, &format!("deleted key {id}"));
        }
        Command::Regenerate { id, grace_seconds } => {
            let grace =
                GracePeriod::from_secs(grace_seconds).map_err(|e| Failure::Usage(e.to_string()))?;
            let format = app.token_format(cli.prefix.as_ref())?;
            app.check_pepper(&hasher)?;
            let (rotation, token) = SecretRotation::generate(&format, &hasher, Some(grace), now);
            let record = store
                .replace_secret(id, &rotation, now, &EventContext::cli())
                .await?;
            output::issued(json, &IssuedKey { record, token });
        }
        Command::Refresh { id } => output::key(
            json,
            &store.refresh(id, now, &EventContext::cli()).await?,
            now,
        ),
        Command::Disable { id } => {
            let update = KeyUpdate {
                active: Some(false),
                disabled_by: Some(CLI_ACTOR.to_owned()),
                ..KeyUpdate::default()
            };
            output::key(
                json,
                &store.update(id, &update, now, &EventContext::cli()).await?,
                now,
            );
        }
        Command::Enable { id } => {
            let update = KeyUpdate {
                active: Some(true),
                ..KeyUpdate::default()
            };
            output::key(
                json,
                &store.update(id, &update, now, &EventContext::cli()).await?,
                now,
            );
        }
        Command::Verify => {
            app.check_pepper(&hasher)?;
            return verify(&store, &app, &hasher, json).await;
        }
        Command::Scan(args) => {
            let prefixes = app.prefixes(cli.prefix.as_ref())?;
            app.check_pepper(&hasher)?;
            return scan::run(&store, &hasher, &prefixes, &args.paths, args.revoke, json).await;
        }
        Command::Rules(args) => {
            rules::print(&app.prefixes(None)?, args.gitleaks, json);
        }
        Command::Events(args) => events::print(&store, args, json).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn create(
    store: &SeaOrmStore,
    app: &App,
    prefix: Option<&Prefix>,
    hasher: &TokenHasher,
    args: CreateArgs,
) -> Result<IssuedKey, Failure> {
    let format = app.token_format(prefix)?;
    let requested = ScopeSet::parse(&args.scopes).map_err(|e| Failure::Usage(e.to_string()))?;
    let catalog = match app.catalog()? {
        Some(catalog) => {
            if let Some(scope) = requested.iter().find(|scope| !catalog.accepts(scope)) {
                return Err(app::unknown_scope(scope.as_str(), &catalog));
            }
            catalog
        }
        None => {
            // Only reached with an explicit prefix: the operator is trusted with any
            // well-formed scope, as there is no catalog to check against.
            eprintln!(
                "warning: no application has recorded its scopes on this database; the scopes \
                 are not checked"
            );
            requested
                .iter()
                .filter(|s| !s.is_wildcard())
                .fold(ScopeCatalog::builder(), |b, s| {
                    b.scope(s.as_str(), s.as_str())
                })
                .build()
                .map_err(|e| Failure::Usage(e.to_string()))?
        }
    };
    let expiry = match (args.never, args.expires_in_days) {
        (true, _) => Expiry::Never,
        (false, Some(days)) => Expiry::InDays(days),
        (false, None) => Expiry::default(),
    };
    let mut new = match args.owner {
        Some(owner) => NewKey::personal(args.name, owner),
        None => NewKey::service(args.name),
    }
    .scopes(args.scopes)
    .expiry(expiry)
    .allowed_ips(args.allowed_ips);
    new.rate_limit = args.rate_limit;
    let issued = new
        .issue(&catalog, &format, hasher, Utc::now())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    store
        .insert(issued.record.clone(), &EventContext::cli())
        .await?;
    Ok(issued)
}

async fn list_all(store: &SeaOrmStore, args: ListArgs) -> Result<Vec<KeyRecord>, Failure> {
    let mut keys = Vec::new();
    let mut cursor: Option<ListCursor> = None;
    loop {
        let page = store
            .list(&ListQuery {
                owner: args.owner.clone(),
                include_revoked: args.include_revoked,
                limit: keyward_core::MAX_PAGE_SIZE,
                cursor,
            })
            .await?;
        keys.extend(page.keys);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(keys),
        }
    }
}

async fn verify(
    store: &SeaOrmStore,
    app: &App,
    hasher: &TokenHasher,
    json: bool,
) -> Result<ExitCode, Failure> {
    let mut input = String::new();
    io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| Failure::Usage(format!("cannot read the token from stdin: {e}")))?;
    let token = match Token::parse(input.trim()) {
        Ok(token) => token,
        Err(err) => {
            output::verdict(json, None, Err(err.to_string()));
            return Ok(ExitCode::from(1));
        }
    };
    if !app.accepts_prefix(token.prefix()) {
        let reason = format!(
            "the application does not accept the prefix `{}` (it accepts {})",
            token.prefix(),
            app.accepted_prefixes()
        );
        output::verdict(json, None, Err(reason));
        return Ok(ExitCode::from(1));
    }
    let now = Utc::now();
    let digest = hasher.digest(&token);
    let Some(record) = store.find_by_digest(&digest, now).await? else {
        let mut reason = "unknown token: no key has this secret".to_owned();
        if !app.is_known() && !hasher.is_peppered() {
            reason.push_str(" (if the application uses a pepper, set KEYWARD_PEPPER to it)");
        }
        output::verdict(json, None, Err(reason));
        return Ok(ExitCode::from(1));
    };
    // The operator's own machine is not the client, so the allow-list is not checked here.
    let mut unrestricted = record.clone();
    unrestricted.allowed_ips.clear();
    let verdict = policy::evaluate(&unrestricted, &digest, now, None).map_err(|d| d.to_string());
    let usable = verdict.is_ok();
    output::verdict(json, Some(&record.view()), verdict);
    let _ = io::stdout().flush();
    Ok(if usable {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
