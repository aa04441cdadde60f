//! The command line: serve, demo, migrate, user, key.

use crate::audit::{self, Actor, Event};
use crate::auth::accounts::{self, Acting, NewAccount};
use crate::auth::password;
use crate::auth::users::{self, Email, Role};
use crate::config::{secret, Config, ConfigError, Defaults, EncryptionKey, ProcessEnv, Source};
use crate::db::{self, DatabaseUrl, DbPool};
use crate::startup::Application;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use std::io::Read;
use std::path::Path;

mod ops;

#[derive(Parser)]
#[command(
    name = "connecthub",
    version,
    about = "Self-hosted OAuth connection hub"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server with settings from the environment (DATABASE_URL, BIND, PUBLIC_URL,
    /// ENCRYPTION_KEY, LOG_LEVEL, LOG_FORMAT)
    Serve,
    /// Run the full app on a local SQLite file with defaults, for trying connecthub out
    Demo,
    /// Apply pending database migrations (DATABASE_URL) and exit
    Migrate,
    /// Manage user accounts
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the encryption key
    #[command(subcommand)]
    Key(KeyCommand),
    /// Check the audit log's hash chain
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Add demo clients (no credentials, tagged `seed`) and made-up usage, to try the app at volume
    Seed(SeedArgs),
    /// Manage service API keys (for scripts; admins also have /admin/api-keys)
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Copy the live database into a new file (SQLite: VACUUM INTO; PostgreSQL: pg_dump)
    Backup(ops::BackupArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the whole chain: "intact", or the first entry that was edited or removed
    Verify(ops::VerifyArgs),
}

#[derive(Args)]
struct SeedArgs {
    /// How many clients to add
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    clients: u32,
    /// How many made-up provider calls to record, spread over existing clients
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    usage_rows: u32,
    /// Over how many days (ending now) the calls and audit entries are spread
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=366))]
    usage_days: u32,
    /// How many made-up audit entries to append (chained), about the newest clients
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=20_000_000))]
    audit_rows: u32,
    /// How many connected OAuth clients to add, their tokens minted by a running sandbox
    /// (ENCRYPTION_KEY seals them; TOKEN_REFRESH_MARGIN_SECS sets when they fall due)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    connected: u32,
    /// The --connected clients get made-up tokens valid until --expiring-within instead:
    /// no sandbox needed, no provider knows them (hand-out benchmarks)
    #[arg(long)]
    made_up_tokens: bool,
    /// Whose sandbox mints the connected clients' grants: klaviyo or kustomer
    #[arg(long, default_value = "klaviyo", value_parser = ["klaviyo", "kustomer"])]
    provider: String,
    /// The connected clients' tokens expire spread evenly until this long from now (30m, 1h)
    #[arg(long, default_value = "1h", value_parser = parse_span)]
    expiring_within: std::time::Duration,
    /// … and not before this long from now
    #[arg(long, default_value = "0s", value_parser = parse_span)]
    expiring_after: std::time::Duration,
    /// The server whose sandbox mints the grants (default: PUBLIC_URL, else http://127.0.0.1:8080)
    #[arg(long)]
    sandbox_url: Option<String>,
}

fn parse_span(raw: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse_duration(raw)
        .ok_or_else(|| "must be a duration such as 90s, 10m or 1h".to_string())
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key and print it once
    Create(ApiKeyCreate),
}

#[derive(Args)]
struct ApiKeyCreate {
    /// What the key is for, e.g. billing-service production
    #[arg(long)]
    name: String,
    /// tokens:read, clients:read or proxy; repeat for several
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// Email of the admin the key is recorded as created by
    #[arg(long)]
    owner: String,
    /// Address ranges the key may be used from (CIDR, comma-separated); default: any
    #[arg(long, default_value = "")]
    allowed_ips: String,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user and print its password (or read one with --password-stdin)
    Add(UserAdd),
    /// Set a new password for an existing user and end their sessions
    Passwd(UserPasswd),
}

#[derive(Args)]
struct UserAdd {
    /// Sign-in email address
    #[arg(long)]
    email: String,
    /// admin or member
    #[arg(long, default_value = "member")]
    role: Role,
    /// Name shown in the app (defaults to the part of the email before @)
    #[arg(long)]
    name: Option<String>,
    /// Read the password from standard input instead of generating one
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Args)]
struct UserPasswd {
    #[arg(long)]
    email: String,
    /// Read the password from standard input instead of generating one
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print a new random ENCRYPTION_KEY (32 bytes, base64)
    Gen,
    /// Re-seal every stored secret under ENCRYPTION_KEY; ENCRYPTION_KEY_PREVIOUS must hold
    /// the key being replaced. Safe to interrupt and run again.
    Rotate,
}

/// Where `demo` keeps its database and key unless told otherwise.
const DEMO_DIR: &str = "data";
const DEMO_ADMIN_EMAIL: &str = "admin@connecthub.local";

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve(Config::from_env()?).await,
        Command::Demo => demo().await,
        Command::Migrate => {
            let pool = pool_from_env().await?;
            drop(pool);
            println!("migrations applied");
            Ok(())
        }
        Command::User(UserCommand::Add(args)) => user_add(args).await,
        Command::User(UserCommand::Passwd(args)) => user_passwd(args).await,
        Command::Key(KeyCommand::Gen) => {
            println!("{}", EncryptionKey::generate().to_base64());
            Ok(())
        }
        Command::Key(KeyCommand::Rotate) => key_rotate().await,
        Command::ApiKey(ApiKeyCommand::Create(args)) => api_key_create(args).await,
        Command::Audit(AuditCommand::Verify(args)) => ops::audit_verify(args).await,
        Command::Backup(args) => ops::backup(args).await,
        Command::Seed(args) => seed(args).await,
    }
}

async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let pool = pool_from_env().await?;
    if args.clients > 0 {
        let count = args.clients as usize;
        let added = db::run(&pool, move |conn| crate::seed::seed(conn, count))
            .await
            .map_err(db::DbError::from)?;
        println!("added {added} demo clients (tag seed, no credentials)");
    }
    if args.usage_rows > 0 {
        let (rows, days) = (args.usage_rows as usize, args.usage_days);
        let added = db::run(&pool, move |conn| crate::seed::usage(conn, rows, days))
            .await
            .map_err(db::DbError::from)?;
        println!("recorded {added} made-up provider calls over {days} days");
    }
    if args.audit_rows > 0 {
        let (rows, days) = (args.audit_rows as usize, args.usage_days);
        let added = db::run(&pool, move |conn| crate::seed::audit(conn, rows, days))
            .await
            .map_err(db::DbError::from)?;
        println!("appended {added} made-up audit entries over {days} days");
    }
    if args.connected > 0 && args.made_up_tokens {
        let (count, valid) = (args.connected as usize, args.expiring_within);
        seed_made_up(&pool, count, valid).await?;
    } else if args.connected > 0 {
        seed_connected(&pool, args).await?;
    }
    Ok(())
}

/// `seed --connected --made-up-tokens`: the tokens are sealed under ENCRYPTION_KEY, the
/// key the server that hands them out must be started with.
async fn seed_made_up(
    pool: &DbPool,
    count: usize,
    valid: std::time::Duration,
) -> anyhow::Result<()> {
    let vault = seeding_vault()?;
    let valid_for = chrono::TimeDelta::from_std(valid)?;
    let added = db::run(pool, move |conn| {
        crate::seed::connected(conn, &vault, count, valid_for)
    })
    .await
    .map_err(db::DbError::from)?;
    println!("added {added} connected clients (tag seed, made-up tokens)");
    Ok(())
}

/// The vault the seeded tokens are sealed with: ENCRYPTION_KEY's.
fn seeding_vault() -> anyhow::Result<crate::vault::Vault> {
    let key = secret(&ProcessEnv, "ENCRYPTION_KEY")?
        .and_then(|raw| EncryptionKey::parse(&raw))
        .ok_or_else(|| ConfigError {
            variable: "ENCRYPTION_KEY".into(),
            expected: EncryptionKey::HINT.into(),
        })?;
    Ok(crate::vault::Vault::new(&key, None))
}

async fn seed_connected(pool: &DbPool, args: SeedArgs) -> anyhow::Result<()> {
    let margin = match ProcessEnv.get("TOKEN_REFRESH_MARGIN_SECS") {
        None => 300,
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| ConfigError {
                variable: "TOKEN_REFRESH_MARGIN_SECS".into(),
                expected: "must be a whole number above 0".into(),
            })?,
    };
    if args.expiring_within <= args.expiring_after {
        anyhow::bail!("--expiring-within must be longer than --expiring-after");
    }
    let plan = crate::seed_connected::Plan {
        count: args.connected as usize,
        sandbox_url: args
            .sandbox_url
            .or_else(|| ProcessEnv.get("PUBLIC_URL"))
            .unwrap_or_else(|| "http://127.0.0.1:8080".into()),
        provider: args.provider,
        expiring_after: args.expiring_after,
        expiring_within: args.expiring_within,
        margin: chrono::TimeDelta::seconds(margin),
    };
    let vault = std::sync::Arc::new(seeding_vault()?);
    let started = std::time::Instant::now();
    let added = crate::seed_connected::seed(pool, &vault, &plan).await?;
    println!(
        "added {added} connected {} clients (tag connected) in {:.1} s",
        plan.provider,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    crate::telemetry::init(&config.log_level, config.log_format);
    let app = Application::build(config).await?;
    tracing::info!(port = app.port(), "connecthub listening");
    app.run_until_stopped().await?;
    Ok(())
}

async fn demo() -> anyhow::Result<()> {
    let bind = ProcessEnv
        .get("BIND")
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let port = bind.rsplit(':').next().unwrap_or("8080");
    let defaults = Defaults {
        database_url: Some(format!("{DEMO_DIR}/connecthub.db")),
        public_url: Some(format!("http://localhost:{port}")),
        encryption_key: Some(demo_key(Path::new(DEMO_DIR))?),
        sandbox: true,
    };
    let config = Config::load(&ProcessEnv, &defaults)?;
    crate::telemetry::init(&config.log_level, config.log_format);
    let public_url = config.public_url.clone();
    let app = Application::build(config).await?;
    let login = ensure_admin(app.pool()).await?;
    let password_line = match login {
        Some(password) => format!("  Password {password}   (shown once; keep it)"),
        None => format!(
            "  Password: the one printed on the first start \
             (set a new one: connecthub user passwd --email {DEMO_ADMIN_EMAIL})"
        ),
    };
    let banner = format!(
        "\n  connecthub demo is running\n  Open   {public_url}\n  Email  {DEMO_ADMIN_EMAIL}\n{password_line}\n\n"
    );
    // A closed stdout must not stop the server.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());
    app.run_until_stopped().await?;
    Ok(())
}

/// The demo's encryption key, kept in a file beside its database so restarts can read
/// the tokens they stored.
fn demo_key(dir: &Path) -> anyhow::Result<String> {
    if let Some(key) = secret(&ProcessEnv, "ENCRYPTION_KEY")? {
        return Ok(key);
    }
    let path = dir.join("demo.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_string());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = EncryptionKey::generate().to_base64();
    std::fs::write(&path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(key)
}

/// Creates the demo admin when there is no admin yet; returns its new password.
async fn ensure_admin(pool: &DbPool) -> anyhow::Result<Option<String>> {
    let existing = db::run(pool, users::find_any_admin).await?;
    if existing.is_some() {
        return Ok(None);
    }
    let generated = password::generate();
    let account = NewAccount {
        email: Email::parse(DEMO_ADMIN_EMAIL).map_err(anyhow::Error::msg)?,
        name: "Admin".into(),
        role: Role::Admin,
        generated_password: true,
    };
    create_user(pool, account, SecretString::from(generated.clone())).await?;
    Ok(Some(generated))
}

pub(crate) async fn pool_from_env() -> anyhow::Result<DbPool> {
    let raw = secret(&ProcessEnv, "DATABASE_URL")?.ok_or_else(|| ConfigError {
        variable: "DATABASE_URL".into(),
        expected: "is required: a SQLite file path or a postgres:// URL".into(),
    })?;
    let url = DatabaseUrl::parse(&raw).map_err(|why| ConfigError {
        variable: "DATABASE_URL".into(),
        expected: why,
    })?;
    tokio::task::spawn_blocking(move || {
        let pool = db::connect(&url, 2)?;
        db::run_migrations(&mut *pool.get()?)?;
        Ok(pool)
    })
    .await?
}

/// The password to set: read from stdin when asked (and held to the same rules as the
/// users page), else generated (and returned so the caller prints it).
fn password_input(from_stdin: bool) -> anyhow::Result<(SecretString, Option<String>)> {
    if !from_stdin {
        return Ok(accounts::chosen_or_generated(None));
    }
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let input = SecretString::from(input.trim_end_matches(['\r', '\n']).to_string());
    accounts::check_new_password(&input).map_err(anyhow::Error::msg)?;
    Ok(accounts::chosen_or_generated(Some(input)))
}

/// Creates the account and its audit entry in one transaction; a taken email is refused
/// by the database, so two runs at once cannot both add it.
async fn create_user(
    pool: &DbPool,
    account: NewAccount,
    secret: SecretString,
) -> anyhow::Result<()> {
    let hash = accounts::hash_password(secret).await?;
    let email = account.email.as_str().to_string();
    let created = db::run(pool, move |conn| {
        accounts::create(conn, &account, &hash, &Acting::command_line())
    })
    .await?;
    if created.is_none() {
        anyhow::bail!("a user with email {email} already exists");
    }
    Ok(())
}

async fn user_add(args: UserAdd) -> anyhow::Result<()> {
    let email = Email::parse(&args.email).map_err(anyhow::Error::msg)?;
    let name = accounts::display_name(args.name.as_deref().unwrap_or(""), &email)
        .map_err(anyhow::Error::msg)?;
    let (secret, generated) = password_input(args.password_stdin)?;
    let pool = pool_from_env().await?;
    let account = NewAccount {
        email: email.clone(),
        name,
        role: args.role,
        generated_password: generated.is_some(),
    };
    create_user(&pool, account, secret).await?;
    println!("created {} ({})", email.as_str(), args.role.as_str());
    if let Some(generated) = generated {
        println!("password: {generated}");
    }
    Ok(())
}

async fn user_passwd(args: UserPasswd) -> anyhow::Result<()> {
    let email = Email::parse(&args.email).map_err(anyhow::Error::msg)?;
    let (secret, generated) = password_input(args.password_stdin)?;
    let pool = pool_from_env().await?;
    let hash = accounts::hash_password(secret).await?;
    let lookup = email.clone();
    let user = db::run(&pool, move |conn| {
        let Some(user) = users::find_by_email(conn, &lookup)? else {
            return Ok(None);
        };
        accounts::reset_password(conn, &user.id, &hash, &Acting::command_line())
    })
    .await?
    .ok_or_else(|| anyhow::anyhow!("no user with email {}", email.as_str()))?;
    println!(
        "password changed for {}; their sessions have ended",
        user.email
    );
    if let Some(generated) = generated {
        println!("password: {generated}");
    }
    Ok(())
}

fn key_from_env(variable: &str) -> anyhow::Result<EncryptionKey> {
    let raw = secret(&ProcessEnv, variable)?.ok_or_else(|| ConfigError {
        variable: variable.into(),
        expected: EncryptionKey::HINT.into(),
    })?;
    Ok(EncryptionKey::parse(&raw).ok_or_else(|| ConfigError {
        variable: variable.into(),
        expected: EncryptionKey::HINT.into(),
    })?)
}

async fn key_rotate() -> anyhow::Result<()> {
    let current = key_from_env("ENCRYPTION_KEY")?;
    let previous = key_from_env("ENCRYPTION_KEY_PREVIOUS")?;
    let vault = std::sync::Arc::new(crate::vault::Vault::new(&current, Some(&previous)));
    let pool = pool_from_env().await?;
    let key_id = vault.current_key_id().to_string();
    let rotated = db::run(&pool, move |conn| {
        let rotated = crate::clients::credentials::rotate(conn, &vault)?;
        // The connect pages' signing secret and the webhook secrets are sealed by the same vault.
        crate::connect::settings::reseal(conn, &vault)?;
        let endpoints = crate::webhooks::endpoints::rotate_key(conn, &vault)?;
        let event = Event::new(Actor::system(), "key_rotated").details(serde_json::json!({
            "key_id": vault.current_key_id(), "credentials": rotated, "webhook_endpoints": endpoints,
        }));
        audit::append(conn, event)?;
        Ok::<_, anyhow::Error>((rotated, endpoints))
    })
    .await
    .map_err(db::DbError::from)?;
    let (rotated, endpoints) = rotated;
    println!("re-sealed {rotated} credentials and {endpoints} webhook secrets under key {key_id}; ENCRYPTION_KEY_PREVIOUS can be removed");
    Ok(())
}

async fn api_key_create(args: ApiKeyCreate) -> anyhow::Result<()> {
    let request =
        crate::api_keys::validate_with_ranges(&args.name, &args.scopes, &args.allowed_ips)
            .map_err(anyhow::Error::msg)?;
    let owner = Email::parse(&args.owner).map_err(anyhow::Error::msg)?;
    let pool = pool_from_env().await?;
    let lookup = owner.clone();
    let user = db::run(&pool, move |conn| users::find_by_email(conn, &lookup))
        .await?
        .filter(|u| u.is_admin())
        .ok_or_else(|| anyhow::anyhow!("no admin with email {}", owner.as_str()))?;
    let created = db::run(&pool, move |conn| {
        let created = crate::api_keys::create_restricted(
            conn,
            &request.name,
            &request.scopes,
            &user.id,
            request.allowed_ips.as_ref(),
        )?;
        let mut details = serde_json::json!({"name": created.key.name, "scopes": created.key.scopes, "prefix": created.key.prefix, "via": "cli"});
        if let Some(ranges) = &created.key.allowed_ips {
            details["allowed_ips"] = ranges.as_str().into();
        }
        let event = user
            .event("api_key_created")
            .target("api_key", created.key.id.clone())
            .details(details);
        audit::append(conn, event)?;
        Ok::<_, anyhow::Error>(created)
    })
    .await
    .map_err(db::DbError::from)?;
    println!("{}", secrecy::ExposeSecret::expose_secret(&created.secret));
    Ok(())
}
