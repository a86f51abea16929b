//! `keyward`: manage an application's API keys from the command line.
//!
//! ```text
//! keyward --database-url sqlite://books.db migrate
//! keyward --prefix books create --name "Backup Script" --scope books:read --owner alice
//! keyward list --json
//! echo "$TOKEN" | keyward verify
//! ```
//!
//! Exit codes: 0 success, 1 the key was not found or is not usable, 2 usage error
//! (bad arguments or invalid input), 3 the database failed.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use keyward_core::{
    Expiry, GracePeriod, IssuedKey, KeyId, KeyRecord, KeyStore, ListCursor, ListQuery, NewKey,
    ScopeCatalog, ScopeSet, SecretRotation, StoreError, Token, TokenFormat, TokenHasher, policy,
};
use keyward_sea_orm::SeaOrmStore;

mod output;

/// Manage keyward API keys in an application's database.
#[derive(Debug, Parser)]
#[command(name = "keyward", version, about, long_about = None)]
struct Cli {
    /// Database URL (sqlite://, postgres:// or mysql://).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://keyward.db?mode=rwc",
        global = true
    )]
    database_url: String,

    /// Prefix of newly created tokens; must match the application's.
    #[arg(long, env = "KEYWARD_PREFIX", default_value = "keyward", global = true)]
    prefix: String,

    /// HMAC pepper, if the application configures one (read from the environment only, so it
    /// never shows in the process list).
    #[arg(
        long = "pepper-from-env",
        env = "KEYWARD_PEPPER",
        hide = true,
        hide_env_values = true
    )]
    pepper: Option<String>,

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
    /// Read a token on stdin and say which key it is and whether it is usable.
    Verify,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// A name people recognise, e.g. "Backup Script".
    #[arg(long)]
    name: String,
    /// A scope to grant; repeat for several.
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
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let format =
        TokenFormat::new(cli.prefix.as_str()).map_err(|e| Failure::Usage(e.to_string()))?;
    let hasher = cli
        .pepper
        .as_deref()
        .map_or_else(TokenHasher::sha256, TokenHasher::hmac);
    let mut options = sea_orm::ConnectOptions::new(cli.database_url.as_str());
    // An operator waiting on an unreachable database wants to know soon.
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    let store = SeaOrmStore::connect(options).await?;
    let json = cli.json;
    match cli.command {
        Command::Migrate => {
            keyward_sea_orm::migrate(store.connection()).await?;
            output::done(json, "migrations applied");
        }
        Command::Create(args) => {
            let issued = create(&store, &format, &hasher, args).await?;
            output::issued(json, &issued);
        }
        Command::List(args) => {
            let keys = list_all(&store, args).await?;
            output::list(json, &keys, Utc::now());
        }
        Command::Show { id } => {
            let key = store
                .get(id)
                .await?
                .ok_or_else(|| Failure::No(format!("no key with id {id}")))?;
            output::key(json, &key, Utc::now());
        }
        Command::Revoke { id } => {
            let key = store.revoke(id, Utc::now()).await?;
            output::key(json, &key, Utc::now());
        }
        Command::Delete { id } => {
            store.delete(id).await?;
            output::done(json, &format!("deleted key {id}"));
        }
        Command::Regenerate { id, grace_seconds } => {
            let grace =
                GracePeriod::from_secs(grace_seconds).map_err(|e| Failure::Usage(e.to_string()))?;
            let now = Utc::now();
            let (rotation, token) = SecretRotation::generate(&format, &hasher, Some(grace), now);
            let record = store.replace_secret(id, &rotation, now).await?;
            output::issued(json, &IssuedKey { record, token });
        }
        Command::Refresh { id } => {
            let key = store.refresh(id, Utc::now()).await?;
            output::key(json, &key, Utc::now());
        }
        Command::Verify => return verify(&store, &hasher, json).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn create(
    store: &SeaOrmStore,
    format: &TokenFormat,
    hasher: &TokenHasher,
    args: CreateArgs,
) -> Result<IssuedKey, Failure> {
    // The operator is trusted with any well-formed scope: the application's catalog is not
    // known here, so the catalog is made of the requested scopes themselves.
    let requested = ScopeSet::parse(&args.scopes).map_err(|e| Failure::Usage(e.to_string()))?;
    let catalog = requested
        .iter()
        .filter(|s| !s.is_wildcard())
        .fold(ScopeCatalog::builder(), |b, s| {
            b.scope(s.as_str(), s.as_str())
        })
        .build()
        .map_err(|e| Failure::Usage(e.to_string()))?;
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
        .issue(&catalog, format, hasher, Utc::now())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    store.insert(issued.record.clone()).await?;
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
    let now = Utc::now();
    let digest = hasher.digest(&token);
    let Some(record) = store.find_by_digest(&digest, now).await? else {
        output::verdict(
            json,
            None,
            Err("unknown token: no key has this secret".to_owned()),
        );
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
