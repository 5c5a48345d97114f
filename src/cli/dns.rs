//! `ferry dns check`: shows what a DNS flip would change (current → target) on an RFC 2136 server and
//! whether the TSIG key is accepted, without changing anything. Works from flags alone so it can be
//! run before any plan exists.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::dns::{Provider, RecordKey, RecordSet, RecordType, Rfc2136, TsigKey};

/// Exit code when a record could not be flipped as asked (e.g. a CNAME conflict); 2 is clap's usage error.
const EXIT_WOULD_FAIL: u8 = 3;

/// DNS flip tools.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DnsCommand,
}

#[derive(Debug, Subcommand)]
enum DnsCommand {
    /// Show what the flip would change and whether the TSIG key is accepted; changes nothing.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The zone's primary server, host[:port] (port 53 by default).
    #[arg(long)]
    server: String,
    /// The zone to update, e.g. example.com.
    #[arg(long)]
    zone: String,
    /// A BIND key file (`key "name" { algorithm ...; secret "..."; };`, as tsig-keygen prints).
    #[arg(long, conflicts_with_all = ["key_name", "secret_env"], required_unless_present = "key_name")]
    key_file: Option<PathBuf>,
    /// The TSIG key name (with --secret-env).
    #[arg(long, requires = "secret_env")]
    key_name: Option<String>,
    /// The TSIG algorithm (with --key-name).
    #[arg(long, default_value = "hmac-sha256")]
    algorithm: String,
    /// Name of the environment variable holding the base64 secret (with --key-name).
    #[arg(long, requires = "key_name")]
    secret_env: Option<String>,
    /// A record to flip: FQDN=TYPE:VALUE[,VALUE]:TTL, e.g. app.example.com=A:192.0.2.10:60 (repeatable).
    #[arg(long = "record", value_name = "FQDN=TYPE:VALUES:TTL")]
    records: Vec<String>,
    /// Seconds to wait for each answer from the server.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
}

/// Runs `ferry dns ...`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args { command } = args;
    match command {
        DnsCommand::Check(check_args) => check(check_args).await,
    }
}

async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let CheckArgs {
        server,
        zone,
        key_file,
        key_name,
        algorithm,
        secret_env,
        records,
        timeout,
    } = args;
    let key = load_key(key_file, key_name, &algorithm, secret_env)?;
    let desired = records
        .iter()
        .map(|spec| parse_record(spec))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let provider = Rfc2136::with_timeout(&server, &zone, key, Duration::from_secs(timeout)).await?;
    println!("{}", provider.describe());
    provider.check_zone().await?;

    let keys: Vec<RecordKey> = desired.iter().map(RecordKey::of).collect();
    let current = provider.read(&keys).await?;
    let mut would_fail = false;
    for (have, want) in current.iter().zip(&desired) {
        let verdict = if want.is_served_by(have) {
            "unchanged"
        } else {
            "change"
        };
        println!(
            "{} {}: {} → {}  [{verdict}]",
            want.fqdn,
            want.record_type,
            show(have),
            show(want)
        );
        if let Err(err) = provider.check_cname_conflicts(std::slice::from_ref(want)).await {
            println!("  would fail: {err}");
            would_fail = true;
        }
    }
    provider
        .check_credentials()
        .await
        .context("credentials rejected")?;
    println!("credentials: accepted (a prerequisite-only update was answered NOERROR; nothing changed)");
    Ok(if would_fail {
        ExitCode::from(EXIT_WOULD_FAIL)
    } else {
        ExitCode::SUCCESS
    })
}

fn show(set: &RecordSet) -> String {
    if set.exists() {
        format!("{} [{}]", set.ttl, set.values.join(", "))
    } else {
        "(absent)".into()
    }
}

fn load_key(
    key_file: Option<PathBuf>,
    key_name: Option<String>,
    algorithm: &str,
    secret_env: Option<String>,
) -> anyhow::Result<TsigKey> {
    match (key_file, key_name, secret_env) {
        (Some(path), _, _) => {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok(TsigKey::from_bind_key_file(&text).with_context(|| path.display().to_string())?)
        }
        (None, Some(name), Some(variable)) => {
            let secret = std::env::var(&variable)
                .with_context(|| format!("environment variable {variable} (the TSIG secret) is not set"))?;
            Ok(TsigKey::new(&name, algorithm, &secret)?)
        }
        _ => bail!("give --key-file, or --key-name with --secret-env"),
    }
}

/// Parses `FQDN=TYPE:VALUE[,VALUE]:TTL`. The TTL is the part after the last `:` (required, so IPv6
/// values with colons stay unambiguous).
fn parse_record(spec: &str) -> anyhow::Result<RecordSet> {
    let usage = || format!("--record {spec:?}: expected FQDN=TYPE:VALUE[,VALUE]:TTL");
    let (fqdn, rest) = spec.split_once('=').with_context(usage)?;
    let (record_type, rest) = rest.split_once(':').with_context(usage)?;
    let (values, ttl) = rest.rsplit_once(':').with_context(usage)?;
    let ttl: u32 = ttl
        .parse()
        .with_context(|| format!("{}: TTL {ttl:?} is not a number", usage()))?;
    let values: Vec<String> = values
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect();
    Ok(RecordSet::new(
        fqdn,
        RecordType::parse(record_type)?,
        ttl,
        &values,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_record_flags_including_ipv6() {
        let set = parse_record("app.example.test=A:192.0.2.2,192.0.2.1:60").unwrap();
        assert_eq!(
            (set.ttl, set.values.clone()),
            (60, vec!["192.0.2.1".into(), "192.0.2.2".into()])
        );
        let v6 = parse_record("app.example.test=AAAA:2001:db8::1:30").unwrap();
        assert_eq!((v6.ttl, v6.values.clone()), (30, vec!["2001:db8::1".into()]));
        let alias = parse_record("www.example.test=cname:lb.example.net:300").unwrap();
        assert_eq!(alias.values, ["lb.example.net."]);
        assert!(parse_record("app.example.test=A:192.0.2.1").is_err());
        assert!(parse_record("app.example.test").is_err());
    }
}
