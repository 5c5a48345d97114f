//! The report from statuses shaped as the controller writes them: figures, the timeline's geometry,
//! commits, DNS, failures, and escaping of everything that comes from the cluster.

use std::collections::BTreeMap;

use super::model::{Report, StepState};
use super::{Found, html, page, timeline, words};
use crate::api::migration::Downtime;
use crate::api::plan::DiscoveredVolume;
use crate::api::{
    Category, Condition, Itinerary, MigMigration, MigMigrationSpec, MigPlan, MigPlanSpec, PipelineStep,
};

const SHA: &str = "3f2a9c0d1e4b5a6978877665544332211a0b9c8d";

fn plan() -> MigPlan {
    let mut plan: MigPlan = serde_json::from_value(serde_json::json!({
        "apiVersion": "migration.ferry.dev/v1alpha1", "kind": "MigPlan",
        "metadata": {"name": "shop", "namespace": "ferry-demo"},
        "spec": {
            "srcMigClusterRef": {"name": "source"}, "destMigClusterRef": {"name": "target"},
            "namespaces": ["shop"],
            "dns": {"records": [{"fqdn": "app.example.test", "type": "A", "value": "192.0.2.20"}]}
        }
    }))
    .unwrap();
    let mut status = crate::api::MigPlanStatus::default();
    status.volumes.push(DiscoveredVolume {
        name: "data".into(),
        namespace: "shop".into(),
        target_name: "data".into(),
        target_namespace: "shop".into(),
        size: Some("1Gi".into()),
        ..DiscoveredVolume::default()
    });
    status
        .conditions
        .push(Condition::holds("Ready", Category::Required, "Ready", "ok"));
    plan.status = Some(status);
    plan
}

fn at(seconds: f64) -> String {
    let whole = seconds.floor() as i64;
    let millis = ((seconds - seconds.floor()) * 1000.0).round() as i64;
    format!("2026-03-01T10:{:02}:{:02}.{millis:03}Z", whole / 60, whole % 60)
}

fn step(name: &str, from: f64, to: Option<f64>, message: &str) -> PipelineStep {
    PipelineStep {
        name: name.into(),
        started: Some(at(from)),
        completed: to.map(at),
        message: Some(message.into()),
        ..PipelineStep::default()
    }
}

fn migration(name: &str, itinerary: Itinerary, pipeline: Vec<PipelineStep>, outcome: &str) -> MigMigration {
    let mut migration = MigMigration::new(name, MigMigrationSpec::of_plan("ferry-demo", "shop"));
    migration.metadata.namespace = Some("ferry-demo".into());
    migration.status = Some(crate::api::MigMigrationStatus {
        itinerary: Some(itinerary),
        pipeline,
        conditions: vec![Condition::holds(outcome, Category::Advisory, outcome, "").durable()],
        ..Default::default()
    });
    migration
}

fn stage() -> MigMigration {
    migration(
        "shop-stage-1",
        Itinerary::Stage,
        vec![
            step("Prepare", 0.0, Some(0.5), "Completed"),
            step(
                "WaitForTransfer",
                1.0,
                Some(3.0),
                "Synced 1 volume(s): 4194304 bytes (4.0 MiB), 7 files transferred.",
            ),
            step("CleanupMovers", 3.0, Some(3.25), "Completed"),
        ],
        "Succeeded",
    )
}

fn cutover() -> MigMigration {
    let mut skipped = step("LowerDNSTTL", 2.0, Some(2.0), "spec.dns.preCutoverTTL is not set");
    skipped.skipped = true;
    let mut cutover = migration(
        "shop-cutover-1",
        Itinerary::Final,
        vec![
            step("Prepare", 0.0, Some(1.0), "Completed"),
            skipped,
            step(
                "QuiesceSource",
                10.0,
                Some(10.5),
                &format!("source quiesced by commit {SHA}"),
            ),
            step(
                "FinalSync",
                10.5,
                Some(11.0),
                "Synced 1 volume(s): 4194304 bytes (4.0 MiB), 1 files transferred.",
            ),
            step(
                "Verify",
                11.0,
                Some(11.25),
                "Verified 1 volume(s): source and target are identical.",
            ),
            step(
                "FlipDNS",
                11.5,
                Some(11.75),
                "Wrote app.example.test. 5 A [192.0.2.20] via RFC 2136.",
            ),
            step(
                "VerifyDNS",
                11.75,
                Some(12.0),
                "app.example.test. 5 A [192.0.2.20] served.",
            ),
            step("Cleanup", 12.0, Some(20.0), "Completed"),
        ],
        "Succeeded",
    );
    let status = cutover.status.as_mut().unwrap();
    status.downtime = Some(Downtime {
        start: at(10.0),
        end: Some(at(12.0)),
        seconds: Some(2.0),
    });
    status.pipeline[3].retries = 2;
    cutover
}

fn found() -> Found {
    Found {
        generated: at(30.0),
        dns_before: vec!["app.example.test. 300 A [192.0.2.10]".into()],
        commit_messages: BTreeMap::from([(
            SHA.to_string(),
            "Ferry: quiesce apps/source for migration x".into(),
        )]),
    }
}

#[test]
fn the_model_holds_the_figures_of_every_run() {
    let report = Report::build(&plan(), &[stage(), cutover()], found());
    assert_eq!(report.plan.name, "ferry-demo/shop");
    assert_eq!(
        (report.plan.source.as_str(), report.plan.target.as_str()),
        ("source", "target")
    );
    assert_eq!(
        report.plan.volumes,
        [("shop/data".into(), "shop/data".into(), "1Gi".into())]
    );
    let stage = &report.stages[0];
    assert_eq!(stage.synced, Some((4_194_304, 7)));
    assert_eq!(stage.sync_seconds, Some(2.0));
    assert_eq!(stage.seconds, Some(3.25));
    assert_eq!(words::rate(4_194_304, 2.0), "2.0 MiB/s");
    let cutover = &report.cutovers[0];
    assert_eq!(
        cutover.synced,
        Some((4_194_304, 1)),
        "the cutover's figures are its final sync's"
    );
    assert_eq!(cutover.steps[2].position, "Step 3/8 QuiesceSource");
    assert_eq!(cutover.steps[2].offset, Some(10.0));
    assert_eq!(cutover.steps[1].state, StepState::Skipped);
    assert_eq!(report.commits.len(), 1);
    assert_eq!(report.commits[0].sha, SHA);
    assert_eq!(report.commits[0].by, "shop-cutover-1 QuiesceSource");
    assert_eq!(
        report.commits[0].message.as_deref(),
        Some("Ferry: quiesce apps/source for migration x")
    );
    assert_eq!(report.dns.names, ["app.example.test A"]);
    let dns_steps: Vec<_> = report
        .dns
        .changes
        .iter()
        .filter_map(|n| n.step.as_deref())
        .collect();
    assert_eq!(
        dns_steps,
        ["FlipDNS", "VerifyDNS"],
        "a skipped step changed nothing"
    );
    assert_eq!(report.verifications.len(), 1);
    assert!(
        report.failures[0].message.contains("retried 2 time(s)"),
        "{:?}",
        report.failures
    );
}

#[test]
fn a_running_step_runs_until_the_report_was_made() {
    let mut running = cutover();
    let status = running.status.as_mut().unwrap();
    status.conditions.clear();
    status.pipeline.truncate(4);
    status.pipeline[3].completed = None;
    status.downtime.as_mut().unwrap().end = None;
    status.downtime.as_mut().unwrap().seconds = None;
    let report = Report::build(&plan(), &[running], found());
    let run = &report.cutovers[0];
    assert_eq!(run.steps[3].state, StepState::Running);
    assert_eq!(run.steps[3].seconds, Some(19.5));
    assert_eq!(run.seconds, Some(30.0));
    let svg = timeline::svg(run);
    assert!(svg.contains("downtime (still open)"), "{svg}");
}

#[test]
fn the_timeline_draws_the_downtime_window_on_the_steps_axis() {
    let report = Report::build(&plan(), &[cutover()], found());
    let svg = timeline::svg(&report.cutovers[0]);
    // 20 s over 720 px from x=260: the window 10 s..12 s is x=620 and 72 px wide.
    assert!(
        svg.contains("<rect class=\"downtime\" x=\"620.0\" y=\"26\" width=\"72.0\""),
        "{svg}"
    );
    assert!(svg.contains(">downtime 2.00 s</text>"), "{svg}");
    // QuiesceSource's bar starts where the window does.
    assert!(
        svg.contains("<rect x=\"620.0\" y=\"81.0\" width=\"18.0\""),
        "{svg}"
    );
    assert_eq!(svg.matches("class=\"bar ").count(), 8);
}

#[test]
fn the_page_is_self_contained_and_says_what_happened() {
    let page = page(&plan(), &[stage(), cutover()], found());
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(
        page.contains("default-src 'none'"),
        "the browser is told to fetch nothing"
    );
    for fetching in ["<script", "src=", "href=", "<link", "@import", "url("] {
        assert!(!page.contains(fetching), "{fetching} in the page");
    }
    for figure in [
        "4.0 MiB (4194304 bytes)",
        "<td class=\"num\">7</td>",
        "2.0 MiB/s",
        "Downtime: <b>2.00 s (2026-03-01T10:00:10.000Z → 2026-03-01T10:00:12.000Z)</b>",
        SHA,
        "Ferry: quiesce apps/source for migration x",
        "Step 3/8 QuiesceSource",
        "app.example.test. 300 A [192.0.2.10]",
        "Verified 1 volume(s): source and target are identical.",
        "<svg class=\"timeline\"",
    ] {
        assert!(page.contains(figure), "{figure} missing from the page");
    }
}

#[test]
fn every_string_from_the_cluster_is_escaped() {
    let mut failed = cutover();
    let status = failed.status.as_mut().unwrap();
    status.conditions = vec![Condition::holds("Failed", Category::Critical, "FinalSync", "x").durable()];
    status.pipeline[3].failed = true;
    status.pipeline[3].message = Some("<script>alert('x')</script> & \"quoted\"".into());
    status
        .errors
        .push("FinalSync failed: <img src=x onerror=alert(1)>".into());
    let mut plan = plan();
    plan.spec.namespaces = vec!["<b>shop</b>".into()];
    let page = page(&plan, &[failed], found());
    assert!(!page.contains("<script"), "a message became a script");
    assert!(!page.contains("<img"), "a message became an element");
    assert!(!page.contains("<b>shop</b>"));
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"));
    assert!(page.contains("FinalSync failed: &lt;img src=x onerror=alert(1)&gt;"));
    assert_eq!(html::escape("a\"b'c<d>&"), "a&quot;b&#39;c&lt;d&gt;&amp;");
}

#[test]
fn an_empty_plan_says_so_instead_of_showing_empty_tables() {
    let mut plan = plan();
    plan.spec = MigPlanSpec {
        namespaces: vec!["shop".into()],
        ..plan.spec.clone()
    };
    plan.spec.dns = None;
    let page = page(&plan, &[], Found::default());
    for sentence in [
        "No stage migration of this plan.",
        "No cutover of this plan yet.",
        "The plan flips no DNS records.",
        "Nothing failed.",
    ] {
        assert!(page.contains(sentence), "{sentence}");
    }
}
