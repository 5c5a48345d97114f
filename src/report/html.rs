//! The report as one self-contained HTML page: inline CSS, inline SVG, no script and nothing fetched
//! (a Content-Security-Policy of `default-src 'none'` says so to the browser too), so it can be filed,
//! mailed and opened offline. Every string from the cluster goes through [`escape`].

use std::fmt::Write as _;

use super::model::{Note, Report, Run};
use super::{timeline, words};
use crate::api::Itinerary;

/// Escapes `text` for HTML element content and double- or single-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2430;margin:24px auto;max-width:1040px;padding:0 16px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dee8;padding-bottom:4px}\
h3{font-size:15px;margin:18px 0 6px}.meta{color:#5b6575}\
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e6eaf0;vertical-align:top}\
th{background:#f3f5f9;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
code{font:12px ui-monospace,Menlo,Consolas,monospace;word-break:break-all}\
.Succeeded{color:#16794a;font-weight:600}.Failed{color:#b42318;font-weight:600}.Running{color:#9a6700;font-weight:600}.Canceled{color:#5b6575;font-weight:600}\
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}.card{border:1px solid #d8dee8;border-radius:6px;padding:8px 12px;min-width:150px}\
.card b{display:block;font-size:18px}.none{color:#5b6575;font-style:italic}\
svg.timeline{max-width:100%;height:auto;font:11px system-ui,sans-serif}\
svg .axis{fill:#5b6575;text-anchor:middle}svg .tick{stroke:#e6eaf0}svg text.step{text-anchor:end;fill:#1d2430}\
svg text.skipped,svg text.not-started{fill:#98a2b3}svg .bar.done{fill:#3b82f6}svg .bar.failed{fill:#d92d20}\
svg .bar.running{fill:#f79009}svg .bar.skipped{fill:#d0d5dd}\
svg .downtime{fill:#d92d20;fill-opacity:.12;stroke:#d92d20;stroke-dasharray:4 2}svg .downtime-label{fill:#b42318;font-weight:600}\
@media print{body{margin:0}}";

/// The page.
pub fn render(report: &Report) -> String {
    let mut page = String::new();
    let title = format!("Ferry migration report: {}", report.plan.name);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n\
         <p class=\"meta\">Generated {} by <code>ferry report</code> from the MigPlan and its MigMigrations.</p>\n",
        escape(&report.generated),
        t = escape(&title),
    );
    cards(&mut page, report);
    plan(&mut page, report);
    stages(&mut page, &report.stages);
    cutovers(&mut page, report);
    dns(&mut page, report);
    commits(&mut page, report);
    notes(
        &mut page,
        "Verification",
        "No cutover verified its data (spec.verify).",
        &report.verifications,
    );
    notes(&mut page, "Failures", "Nothing failed.", &report.failures);
    page.push_str("</body></html>\n");
    page
}

fn cards(page: &mut String, report: &Report) {
    let last = report.cutovers.last();
    let moved: u64 = report
        .stages
        .iter()
        .chain(&report.cutovers)
        .filter_map(|r| r.synced)
        .map(|s| s.0)
        .max()
        .unwrap_or(0);
    let card = |label: &str, value: String, class: &str| {
        format!(
            "<div class=\"card\">{}<b class=\"{class}\">{}</b></div>",
            escape(label),
            escape(&value)
        )
    };
    page.push_str("<div class=\"cards\">");
    page.push_str(&card("Stages", report.stages.len().to_string(), ""));
    let (result, class) = match last {
        Some(run) => (run.outcome.word().to_string(), run.outcome.word()),
        None => ("none yet".to_string(), "none"),
    };
    page.push_str(&card("Cutover", result, class));
    let downtime = last
        .and_then(|r| r.downtime.as_ref())
        .map_or("-".to_string(), |w| {
            w.seconds.map_or("open".to_string(), words::duration)
        });
    page.push_str(&card("Downtime", downtime, ""));
    page.push_str(&card("Data in the volumes", words::bytes(moved), ""));
    page.push_str(&card("Failures", report.failures.len().to_string(), ""));
    page.push_str("</div>\n");
}

fn plan(page: &mut String, report: &Report) {
    let plan = &report.plan;
    let _ = write!(
        page,
        "<h2>Plan</h2>\n<table><tr><th>MigPlan</th><td><code>{}</code></td></tr>\
         <tr><th>Source cluster</th><td>{}</td></tr><tr><th>Target cluster</th><td>{}</td></tr>\
         <tr><th>Namespaces</th><td>{}</td></tr><tr><th>Ready</th><td>{}</td></tr>\
         <tr><th>Cut over</th><td>{}</td></tr></table>\n",
        escape(&plan.name),
        escape(&plan.source),
        escape(&plan.target),
        escape(&plan.namespaces.join(", ")),
        escape(&plan.ready),
        escape(plan.cut_over.as_deref().unwrap_or("no")),
    );
    page.push_str("<h3>Volumes</h3>\n");
    if plan.volumes.is_empty() {
        page.push_str("<p class=\"none\">The plan discovered no volumes.</p>\n");
        return;
    }
    page.push_str("<table><tr><th>Source PVC</th><th>Target PVC</th><th>Size</th></tr>");
    for (source, target, size) in &plan.volumes {
        let _ = write!(
            page,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td class=\"num\">{}</td></tr>",
            escape(source),
            escape(target),
            escape(size)
        );
    }
    page.push_str("</table>\n");
}

/// `48.8 KiB (50003 bytes)` and the file count, or dashes.
fn synced_cells(run: &Run) -> String {
    match run.synced {
        Some((bytes, files)) => format!(
            "<td class=\"num\">{} ({bytes} bytes)</td><td class=\"num\">{files}</td><td class=\"num\">{}</td>",
            escape(&words::bytes(bytes)),
            escape(&run.sync_seconds.map_or("-".into(), |s| words::rate(bytes, s)))
        ),
        None => "<td class=\"num\">-</td><td class=\"num\">-</td><td class=\"num\">-</td>".into(),
    }
}

fn outcome_cell(run: &Run) -> String {
    format!(
        "<td class=\"{}\">{}</td>",
        run.outcome.word(),
        escape(&run.outcome.describe())
    )
}

fn stages(page: &mut String, runs: &[Run]) {
    page.push_str("<h2>Stages</h2>\n");
    if runs.is_empty() {
        page.push_str("<p class=\"none\">No stage migration of this plan.</p>\n");
        return;
    }
    page.push_str(
        "<table><tr><th>MigMigration</th><th>Started</th><th>Data in the volumes</th><th>Files sent</th>\
         <th>Rate</th><th>Duration</th><th>Result</th></tr>",
    );
    for run in runs {
        let _ = write!(
            page,
            "<tr><td><code>{}</code></td><td>{}</td>{}<td class=\"num\">{}</td>{}</tr>",
            escape(&run.name),
            escape(run.started.as_deref().unwrap_or("-")),
            synced_cells(run),
            escape(&run.seconds.map_or("-".into(), words::duration)),
            outcome_cell(run)
        );
    }
    page.push_str(
        "</table>\n<p class=\"meta\">Rate: data in the volumes over the transfer step's time \
                   (an incremental stage sends only what changed).</p>\n",
    );
}

fn cutovers(page: &mut String, report: &Report) {
    page.push_str("<h2>Cutover</h2>\n");
    if report.cutovers.is_empty() {
        page.push_str("<p class=\"none\">No cutover of this plan yet.</p>\n");
    }
    for run in report.cutovers.iter().chain(&report.rollbacks) {
        let kind = if run.itinerary == Itinerary::Rollback {
            "Rollback"
        } else {
            "Cutover"
        };
        let _ = write!(
            page,
            "<h3>{kind} <code>{}</code>: <span class=\"{}\">{}</span></h3>\n<p>",
            escape(&run.name),
            run.outcome.word(),
            escape(&run.outcome.describe())
        );
        if let Some(window) = &run.downtime {
            let _ = write!(page, "Downtime: <b>{}</b>. ", escape(&words::downtime(window)));
        }
        if let Some(seconds) = run.seconds {
            let _ = write!(page, "Duration: {}. ", escape(&words::duration(seconds)));
        }
        if let Some((bytes, files)) = run.synced {
            let _ = write!(
                page,
                "Final sync: {} ({bytes} bytes), {files} files sent.",
                escape(&words::bytes(bytes))
            );
        }
        page.push_str("</p>\n");
        page.push_str(&timeline::svg(run));
        page.push_str("\n<table><tr><th>Step</th><th>Start</th><th>Duration</th><th>Message</th></tr>");
        for step in &run.steps {
            let _ = write!(
                page,
                "<tr><td class=\"{}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                timeline::class(step.state),
                escape(&step.position),
                escape(
                    &step
                        .offset
                        .map_or("-".into(), |o| format!("+{}", words::duration(o)))
                ),
                escape(&step.seconds.map_or("-".into(), words::duration)),
                escape(&step.message)
            );
        }
        page.push_str("</table>\n");
    }
}

fn dns(page: &mut String, report: &Report) {
    let dns = &report.dns;
    page.push_str("<h2>DNS</h2>\n");
    if dns.names.is_empty() {
        page.push_str("<p class=\"none\">The plan flips no DNS records.</p>\n");
        return;
    }
    let list = |items: &[String]| {
        items
            .iter()
            .map(|i| format!("<li><code>{}</code></li>", escape(i)))
            .collect::<String>()
    };
    let _ = writeln!(
        page,
        "<p>Records the cutover flips:</p><ul>{}</ul>",
        list(&dns.names)
    );
    page.push_str("<h3>Before the cutover</h3>\n");
    if dns.before.is_empty() {
        page.push_str(
            "<p class=\"none\">No record sets recorded on the plan (no cutover reached LowerDNSTTL or \
                       FlipDNS, or a rollback restored them).</p>\n",
        );
    } else {
        let _ = writeln!(page, "<ul>{}</ul>", list(&dns.before));
    }
    page.push_str("<h3>After: what the DNS steps did</h3>\n");
    note_table(page, &dns.changes, "No DNS step ran.");
}

fn commits(page: &mut String, report: &Report) {
    page.push_str("<h2>Git commits</h2>\n");
    if report.commits.is_empty() {
        page.push_str(
            "<p class=\"none\">No step named a commit (Patch-mode quiesce, or no cutover yet).</p>\n",
        );
        return;
    }
    page.push_str("<table><tr><th>SHA</th><th>Commit message</th><th>Step</th><th>Step message</th></tr>");
    for commit in &report.commits {
        let message = match &commit.message {
            Some(message) => escape(message.lines().next().unwrap_or_default()),
            None => "<span class=\"none\">not read (give <code>--git-dir</code>)</span>".into(),
        };
        let _ = write!(
            page,
            "<tr><td><code>{}</code></td><td>{message}</td><td>{}</td><td>{}</td></tr>",
            escape(&commit.sha),
            escape(&commit.by),
            escape(&commit.step_message)
        );
    }
    page.push_str("</table>\n");
}

fn notes(page: &mut String, title: &str, empty: &str, notes: &[Note]) {
    let _ = writeln!(page, "<h2>{}</h2>", escape(title));
    note_table(page, notes, empty);
}

fn note_table(page: &mut String, notes: &[Note], empty: &str) {
    if notes.is_empty() {
        let _ = writeln!(page, "<p class=\"none\">{}</p>", escape(empty));
        return;
    }
    page.push_str("<table><tr><th>MigMigration</th><th>Step</th><th>Message</th></tr>");
    for note in notes {
        let _ = write!(
            page,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            escape(&note.migration),
            escape(note.step.as_deref().unwrap_or("-")),
            escape(&note.message)
        );
    }
    page.push_str("</table>\n");
}
