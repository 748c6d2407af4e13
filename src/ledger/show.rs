//! The ledger's runs as `tributary runs` prints them.

use std::fmt::Write;

use super::{RunDetail, RunRow};

/// The runs as a table, one line each.
pub fn table(rows: &[RunRow]) -> String {
    if rows.is_empty() {
        return "no runs recorded\n".into();
    }
    let lines: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                r.job.clone(),
                r.status.clone(),
                r.started_at.clone(),
                seconds(r),
                r.rows.map_or_else(|| "-".into(), |n| n.to_string()),
                r.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
                params(&r.params),
            ]
        })
        .collect();
    let header = [
        "ID", "JOB", "STATUS", "STARTED", "SECONDS", "ROWS", "EXIT", "PARAMS",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: &[&str]| {
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}  ");
            }
        }
        out.push('\n');
    };
    push(&header);
    for line in &lines {
        push(&line.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

/// One run in full.
pub fn detail(d: &RunDetail) -> String {
    let r = &d.run;
    let mut out = String::new();
    let _ = writeln!(out, "run {} of job `{}`: {}", r.id, r.job, r.status);
    let _ = writeln!(out, "  identity   {}", r.identity);
    let _ = writeln!(out, "  query      {}", d.query_path);
    let _ = writeln!(out, "  params     {}", params(&r.params));
    if let Some(as_of) = &r.as_of {
        let _ = writeln!(out, "  as of      {as_of}");
    }
    let _ = writeln!(
        out,
        "  started    {} (pid {} on {}, tributary {})",
        r.started_at, r.pid, r.host, r.version
    );
    if let Some(ended) = &r.ended_at {
        let _ = writeln!(out, "  ended      {ended} ({} s)", seconds(r));
    }
    if let Some(code) = r.exit_code {
        let _ = writeln!(out, "  exit code  {code}");
    }
    if let Some(error) = &r.error {
        let _ = writeln!(
            out,
            "  {}  {error}",
            if r.status == "skipped" {
                "why      "
            } else {
                "error    "
            }
        );
    }
    if let Some(previous) = r.took_over {
        let _ = writeln!(out, "  took over the lock of run {previous}");
    }
    if let Some(shards) = d.shards.as_object() {
        let _ = writeln!(out, "  shards");
        for (name, url) in shards {
            let _ = writeln!(out, "    {name} = {}", url.as_str().unwrap_or_default());
        }
    }
    if let Some(snapshots) = d.snapshots.as_object().filter(|s| !s.is_empty()) {
        let _ = writeln!(out, "  snapshots");
        for (shard, id) in snapshots {
            let _ = writeln!(out, "    {shard}: {}", id.as_str().unwrap_or_default());
        }
    }
    if !d.tasks.is_empty() {
        let _ = writeln!(out, "  tasks");
        for t in &d.tasks {
            let part = t
                .partition
                .as_deref()
                .map(|p| format!(" [{p}]"))
                .unwrap_or_default();
            let _ = write!(
                out,
                "    {}{part}: {}, {} rows, {} bytes, {} attempt{}, {:.3} s",
                t.shard,
                t.outcome,
                t.rows,
                t.bytes,
                t.attempts,
                if t.attempts == 1 { "" } else { "s" },
                t.seconds
            );
            match &t.error {
                Some(e) => {
                    let _ = writeln!(out, ": {e}");
                }
                None => out.push('\n'),
            }
        }
    }
    if !d.outputs.is_empty() {
        let _ = writeln!(out, "  outputs");
        for o in &d.outputs {
            let _ = writeln!(
                out,
                "    {} ({} bytes, sha256 {})",
                o.path, o.bytes, o.sha256
            );
        }
    }
    out
}

fn seconds(r: &RunRow) -> String {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (parse(&r.started_at), r.ended_at.as_deref().and_then(parse)) {
        (Some(start), Some(end)) => {
            format!("{:.1}", (end - start).num_milliseconds() as f64 / 1000.0)
        }
        _ => "-".into(),
    }
}

fn params(params: &serde_json::Value) -> String {
    match params.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => "-".into(),
    }
}
