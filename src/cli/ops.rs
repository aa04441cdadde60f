//! Operating commands: `backup` and `audit verify`.

use super::pool_from_env;
use crate::audit::{self, Head};
use crate::config::{secret, ConfigError, ProcessEnv};
use crate::db::{self, DatabaseUrl};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct BackupArgs {
    /// The file to write; it must not exist yet
    #[arg(long)]
    to: PathBuf,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// A head published earlier (`<count>:<hash>`, from the audit.head event or the log):
    /// the chain must still reach it, so cutting off the newest entries is found
    #[arg(long, value_parser = Head::parse)]
    expect_head: Option<Head>,
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let raw = secret(&ProcessEnv, "DATABASE_URL")?.ok_or_else(|| ConfigError {
        variable: "DATABASE_URL".into(),
        expected: "is required: the database to back up".into(),
    })?;
    let url = DatabaseUrl::parse(&raw).map_err(|why| ConfigError {
        variable: "DATABASE_URL".into(),
        expected: why,
    })?;
    let to = args.to;
    let shown = crate::backup::pg_dump_command(&to);
    let postgres = url.is_postgres();
    let done = tokio::task::spawn_blocking(move || crate::backup::backup(&url, &to)).await??;
    println!(
        "backed up to {} ({} bytes; {})",
        done.path.display(),
        done.bytes,
        done.check
    );
    if postgres {
        println!("made with: {shown}");
        println!("restore into an empty database: pg_restore --no-owner --dbname=\"$NEW_DATABASE_URL\" {}", done.path.display());
    }
    Ok(())
}

pub async fn audit_verify(args: VerifyArgs) -> anyhow::Result<()> {
    let pool = pool_from_env().await?;
    let head = args.expect_head;
    let expected = head.clone();
    let verdict = db::run(&pool, move |conn| {
        audit::verify_against(conn, expected.as_ref())
    })
    .await?;
    match verdict {
        audit::Verdict::Intact { entries } => {
            match head {
                Some(head) => println!("intact: {entries} entries, passing the published head {head}"),
                None => println!("intact: {entries} entries"),
            }
            Ok(())
        }
        audit::Verdict::Broken { entry_id, reason } => {
            anyhow::bail!("broken at entry {entry_id}: {reason}")
        }
        audit::Verdict::ShorterThanHead { entries, head } => anyhow::bail!(
            "cut off: the chain has {entries} entries but a head with {head} was published (its newest entries were removed)"
        ),
    }
}
