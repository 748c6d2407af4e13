//! `tributary check`: before a nightly run, whether every shard can be reached, how (the
//! server, the connection's encryption and whether its certificate was verified, the
//! role), whether that role could write anything, and the query's columns as each shard
//! describes them. Nothing of the result is read.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::config::{CheckTarget, SourceConfig, shards::SslMode};
use crate::error::{Error, exit};
use crate::plan;
use crate::source::{ShardFacts, ShardPool};

/// How one shard fared.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShardCheck {
    pub shard: String,
    /// Where it is, without secrets.
    pub url: String,
    pub passed: bool,
    /// The exit code a run failing as this check did would have (0 when it passed).
    pub exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// From the start of the check to its end, connecting included.
    pub milliseconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sslmode: Option<&'static str>,
    /// Whether the server's certificate was checked (`verify-ca`, `verify-full`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<ShardFacts>,
    /// What passes but deserves a look: a role that could write, a connection in clear.
    pub warnings: Vec<String>,
}

/// Checks every shard at once; the results in the shards' order.
pub async fn check(target: &CheckTarget) -> Vec<ShardCheck> {
    // Connecting is bounded by --connect-timeout; the describe and the catalog queries
    // that follow get as long again, and a margin.
    let limit = target.options.connect_timeout * 2 + Duration::from_secs(30);
    let checks = target
        .shards
        .iter()
        .enumerate()
        .map(|(i, shard)| async move {
            let started = Instant::now();
            let (sslmode, verified) = match &shard.source {
                SourceConfig::Postgres(pg) => (
                    Some(pg.tls.mode.as_str()),
                    Some(matches!(
                        pg.tls.mode,
                        SslMode::VerifyCa | SslMode::VerifyFull
                    )),
                ),
                SourceConfig::Mysql(m) => (Some(m.ssl_mode.as_str()), Some(m.ssl_mode.verifies())),
                _ => (None, None),
            };
            let query = target.job.as_ref().map(|job| plan::base_query(job, i));
            let result = match ShardPool::open(shard, 1, &target.options) {
                Err(e) => Err(e),
                Ok(pool) => {
                    let facts = tokio::time::timeout(limit, pool.facts(query.as_ref())).await;
                    pool.close();
                    match facts {
                        Ok(result) => result,
                        Err(_) => Err(crate::error::TaskError::new(
                            &shard.name,
                            crate::error::TaskErrorKind::Timeout { after: limit },
                        )),
                    }
                }
            };
            let milliseconds = started.elapsed().as_millis() as u64;
            let mut check = ShardCheck {
                shard: shard.name.clone(),
                url: shard.source.display(),
                passed: result.is_ok(),
                exit_code: exit::SUCCESS,
                error: None,
                milliseconds,
                sslmode,
                certificate_verified: verified,
                facts: None,
                warnings: Vec::new(),
            };
            match result {
                Err(e) => {
                    check.error = Some(e.kind.to_string());
                    check.exit_code = Error::Task(e).exit_code();
                }
                Ok(facts) => {
                    check.warnings = warnings(&facts, sslmode);
                    check.facts = Some(facts);
                }
            }
            check
        });
    futures_util::future::join_all(checks).await
}

/// What a shard that passed still deserves a warning for.
fn warnings(facts: &ShardFacts, sslmode: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if !facts.can_write.is_empty() {
        out.push(format!(
            "role `{}` can write ({}). tributary reads in READ ONLY transactions, but a role that can write nothing guards against a mistake elsewhere",
            facts.role.as_deref().unwrap_or("?"),
            facts.can_write.join("; ")
        ));
    }
    if let Some(tls) = &facts.tls
        && !tls.encrypted
    {
        out.push(match sslmode {
            Some("disable") => "the connection is not encrypted (sslmode=disable)".to_string(),
            mode => format!(
                "the connection is not encrypted: the server offered no TLS and sslmode={} accepted plaintext; require it with sslmode=verify-full",
                mode.unwrap_or("prefer")
            ),
        });
    }
    out
}

/// The exit code of a check: the first failed shard's, else 0.
pub fn exit_code(checks: &[ShardCheck]) -> i32 {
    checks
        .iter()
        .find(|c| !c.passed)
        .map_or(exit::SUCCESS, |c| c.exit_code)
}

/// The checks as people read them.
pub fn render(checks: &[ShardCheck]) -> String {
    let mut out = String::new();
    for c in checks {
        let _ = writeln!(
            out,
            "shard `{}` ({}): {} in {} ms",
            c.shard,
            c.url,
            if c.passed { "ok" } else { "FAILED" },
            c.milliseconds
        );
        if let Some(e) = &c.error {
            let _ = writeln!(out, "  error     {e} (a run would exit {})", c.exit_code);
        }
        if let Some(f) = &c.facts {
            let _ = writeln!(out, "  server    {}", f.server);
            if let Some(tls) = &f.tls {
                let verified = match c.certificate_verified {
                    Some(true) => "certificate verified",
                    _ => "certificate not verified",
                };
                let mode = c.sslmode.unwrap_or("prefer");
                if tls.encrypted {
                    let _ = writeln!(
                        out,
                        "  tls       {} {}, {verified} (sslmode={mode})",
                        tls.protocol.as_deref().unwrap_or("TLS"),
                        tls.cipher.as_deref().unwrap_or("")
                    );
                } else {
                    let _ = writeln!(out, "  tls       none (sslmode={mode})");
                }
            }
            if let Some(role) = &f.role {
                let _ = writeln!(
                    out,
                    "  role      {role}: {}",
                    if f.can_write.is_empty() {
                        "can write nothing"
                    } else {
                        "can write"
                    }
                );
            }
            if !f.columns.is_empty() {
                let _ = writeln!(out, "  columns");
                for col in &f.columns {
                    let _ = writeln!(
                        out,
                        "    {}  {} -> {}",
                        col.name, col.source_type, col.arrow_type
                    );
                }
            }
        }
        for w in &c.warnings {
            let _ = writeln!(out, "  warning   {w}");
        }
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    let warned = checks.iter().filter(|c| !c.warnings.is_empty()).count();
    let _ = writeln!(
        out,
        "{} shard{}: {} passed, {failed} failed, {warned} with warnings",
        checks.len(),
        if checks.len() == 1 { "" } else { "s" },
        checks.len() - failed
    );
    out
}
