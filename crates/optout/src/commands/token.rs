//! `optout token member|service`: mint a JWT signed with the data directory's token key
//! (`DIR/token.key`, created on first use), for operators, the demo and tests. The token
//! is printed alone on stdout.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use optout_core::{Clock, Jurisdiction, SystemClock};
use optout_server::ServerConfig;

use crate::commands::parse_member;
use crate::data_dir::DataDir;
use crate::exit::{bad_input, CliResult, Context};

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// A member token: the member may read and change their own settings.
    Member {
        member: String,
        /// The member's jurisdiction (ISO 3166-1 alpha-2).
        #[arg(long)]
        jurisdiction: String,
        #[command(flatten)]
        common: TokenArgs,
    },
    /// A service token for the platform endpoints.
    Service {
        /// Scopes, comma-separated: choices:write, consent:read, ledger:read, reports:read,
        /// snapshots:write, snapshots:read.
        #[arg(long, required = true, value_delimiter = ',')]
        scope: Vec<String>,
        /// The service's name (the token's `sub`, recorded as the actor of its choices).
        #[arg(long, default_value = "platform")]
        name: String,
        #[command(flatten)]
        common: TokenArgs,
    },
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Lifetime: seconds, or a number with s, m, h or d.
    #[arg(long, default_value = "1h")]
    pub ttl: String,
    /// The service's TOML configuration (for the audience and issuer).
    #[arg(long, env = "OPTOUT_CONFIG")]
    pub config: Option<PathBuf>,
}

pub fn run(data_dir: &DataDir, command: &TokenCommand) -> CliResult {
    let common = match command {
        TokenCommand::Member { common, .. } | TokenCommand::Service { common, .. } => common,
    };
    let config = ServerConfig::load(
        common.config.as_deref(),
        |name| std::env::var(name).ok(),
        &[],
    )
    .context_bad_input("configuration")?;
    let ttl_seconds = parse_ttl(&common.ttl)?;
    let ttl_max = config.limits.token_ttl_seconds_max;
    if ttl_seconds > ttl_max {
        return Err(bad_input(anyhow::anyhow!(
            "--ttl {} is longer than the {ttl_max} s allowed (limits.token_ttl_seconds_max)",
            common.ttl
        )));
    }
    if !data_dir.is_initialized() {
        return Err(bad_input(data_dir.not_initialized()));
    }
    let issuer = config
        .token_issuer(data_dir.path())
        .map_err(anyhow::Error::from)?;
    let now = SystemClock.now();
    let ttl = i64::try_from(ttl_seconds).unwrap_or(i64::MAX);
    let token = match command {
        TokenCommand::Member {
            member,
            jurisdiction,
            ..
        } => {
            let member = parse_member(member)?;
            let jurisdiction =
                Jurisdiction::parse(jurisdiction).context_bad_input("--jurisdiction")?;
            issuer.member(member, Some(jurisdiction), now, ttl)
        }
        TokenCommand::Service { scope, name, .. } => issuer.service(name, scope, now, ttl),
    }
    .context_bad_input("token")?;
    println!("{token}");
    Ok(())
}

/// `90`, `90s`, `30m`, `1h`, `7d` → seconds.
pub fn parse_ttl(text: &str) -> CliResult<u64> {
    let text = text.trim();
    let (number, unit_seconds) = match text.char_indices().last() {
        Some((index, 's')) => (text.get(..index), 1),
        Some((index, 'm')) => (text.get(..index), 60),
        Some((index, 'h')) => (text.get(..index), 3_600),
        Some((index, 'd')) => (text.get(..index), 86_400),
        _ => (Some(text), 1),
    };
    number
        .and_then(|number| number.parse::<u64>().ok())
        .filter(|number| *number > 0)
        .and_then(|number| number.checked_mul(unit_seconds))
        .ok_or_else(|| {
            bad_input(anyhow::anyhow!(
                "--ttl {text:?}: expected a positive number of seconds, or with s, m, h or d (e.g. 1h)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90").unwrap(), 90);
        assert_eq!(parse_ttl("30m").unwrap(), 1_800);
        assert_eq!(parse_ttl("1h").unwrap(), 3_600);
        assert_eq!(parse_ttl("2d").unwrap(), 172_800);
        for bad in ["", "h", "0", "-1h", "1w", "1.5h"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
    }
}
