//! The monitoring manifests (`manifests/monitoring`) hold up against the controller's real metrics:
//! every metric that a PrometheusRule or Grafana dashboard expression reads is one that `/metrics`
//! exposes (names taken from `Metrics::encode`, as prometheus-client writes them, `_total`, `_bucket`,
//! `_sum` and `_count` included), so a renamed metric cannot leave an alert silently matching nothing.
//! Every alert can be acted on (`for`, `severity`, `summary`, `description`), the dashboard reads its
//! data source from the `${datasource}` variable, and the ServiceMonitor selects the install Service.
//! Pure: no cluster.

use std::collections::BTreeSet;
use std::path::Path;

use ferry::controller::metrics::{
    ErrorLabels, Metrics, MigrationLabels, PlanLabels, TriggerLabels, WebhookLabels,
};
use serde_json::Value;

fn read(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|err| panic!("{path} is not YAML: {err}"))
}

/// The series names of the real registry, with one observation of each metric so that every family
/// writes its samples.
fn exported() -> BTreeSet<String> {
    let metrics = Metrics::default();
    let labels = |itinerary: &str, result: &str| MigrationLabels {
        itinerary: itinerary.into(),
        result: result.into(),
    };
    metrics.migrations.get_or_create(&labels("Stage", "failed")).inc();
    metrics.stage_duration.observe(30.0);
    metrics.bytes.inc_by(1024);
    metrics.downtime.observe(12.0);
    metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            kind: "MigPlan".into(),
            reason: "kube".into(),
        })
        .inc();
    metrics
        .triggered_stages
        .get_or_create(&TriggerLabels {
            trigger: "schedule".into(),
            result: "skipped_busy".into(),
        })
        .inc();
    metrics
        .webhook_requests
        .get_or_create(&WebhookLabels {
            result: "unauthorized".into(),
        })
        .inc();
    metrics.set_next_scheduled_stage(
        PlanLabels {
            namespace: "ferry".into(),
            plan: "shop".into(),
        },
        Some(1_800_000_000),
        |_| true,
    );
    let names: BTreeSet<String> = metrics
        .encode()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect();
    // Five counters, and two histograms of three series each.
    assert!(names.len() >= 11, "too few series in the exposition: {names:?}");
    names
}

// === PromQL: the metric names an expression reads ===

/// Aggregation operators, binary and set operators, modifiers and literals: identifiers that are not
/// metric names even when no `(` follows them (`sum by (le) (...)`, `a and b`, `offset 1h`).
const KEYWORDS: &str = "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk \
    limit_ratio and or unless atan2 bool offset inf nan";

/// Keywords followed by a list of label names in parentheses.
const GROUPING: &str = "by without on ignoring group_left group_right";

/// The metric names `expr` reads: identifiers that are not functions (followed by `(`), keywords,
/// label names (inside `{...}` or a grouping list), strings, numbers, durations (`[5m]`, `offset 1h`)
/// or Grafana variables (`$__rate_interval`, `${datasource}`).
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_past = |mut i: usize, close: char| {
        while i < chars.len() && chars[i] != close {
            i = if matches!(chars[i], '"' | '\'' | '`') {
                skip_string(&chars, i)
            } else {
                i + 1
            };
        }
        i + 1
    };
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = skip_past(i, '}');
        } else if c == '[' {
            i = skip_past(i, ']');
        } else if c == '$' {
            i = if chars.get(i + 1) == Some(&'{') {
                skip_past(i, '}')
            } else {
                (i + 1..chars.len())
                    .find(|&j| !ident(chars[j]))
                    .unwrap_or(chars.len())
            };
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            i += 1;
            while i < chars.len()
                && (ident(chars[i])
                    || chars[i] == '.'
                    || (matches!(chars[i], '+' | '-') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            let next = (i..chars.len()).find(|&j| !chars[j].is_whitespace());
            let call = next.is_some_and(|j| chars[j] == '(');
            if GROUPING.split_whitespace().any(|k| k == lower) {
                if let Some(j) = next.filter(|_| call) {
                    i = skip_past(j, ')');
                }
            } else if !KEYWORDS.split_whitespace().any(|k| k == lower) && !call {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The index just past the string literal opening at `start` (backslash escapes, except in raw
/// backtick strings).
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        i += if quote != '`' && chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

/// One message per expression (`(where, expr)`) that reads a metric not in `known`, or none at all.
fn unknown_metrics(expressions: &[(String, String)], known: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (place, expr) in expressions {
        let names = metric_names(expr);
        let unknown: Vec<&String> = names.iter().filter(|name| !known.contains(*name)).collect();
        if names.is_empty() {
            problems.push(format!("{place}: `{expr}` reads no metric"));
        } else if !unknown.is_empty() {
            problems.push(format!("{place}: `{expr}` reads unknown metric(s) {unknown:?}"));
        }
    }
    problems
}

// === The PrometheusRule ===

const RULES: &str = "manifests/monitoring/prometheusrule.yaml";
const DASHBOARD: &str = "manifests/monitoring/grafana-dashboard.json";

fn rules() -> Vec<Value> {
    let rule = yaml(RULES);
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    let groups = rule["spec"]["groups"].as_array().expect("spec.groups").clone();
    groups
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules").clone())
        .collect()
}

fn rule_name(rule: &Value) -> String {
    rule["alert"]
        .as_str()
        .or(rule["record"].as_str())
        .expect("alert or record")
        .to_string()
}

#[test]
fn rule_expressions_read_only_exported_metrics() {
    let rules = rules();
    // Alerts may read the file's own recording rules.
    let mut known = exported();
    known.extend(
        rules
            .iter()
            .filter_map(|rule| rule["record"].as_str().map(String::from)),
    );
    let expressions: Vec<(String, String)> = rules
        .iter()
        .map(|rule| {
            (
                format!("{RULES} {}", rule_name(rule)),
                rule["expr"].as_str().expect("expr").into(),
            )
        })
        .collect();
    let problems = unknown_metrics(&expressions, &known);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_alert_can_be_acted_on() {
    let alerts: Vec<Value> = rules()
        .into_iter()
        .filter(|rule| rule["alert"].is_string())
        .collect();
    let names: BTreeSet<String> = alerts.iter().map(rule_name).collect();
    for expected in [
        "FerryStageFailed",
        "FerryCutoverFailed",
        "FerryScheduledStageSkipped",
        "FerryScheduledStageOverdue",
        "FerryStageSlowerThanUsual",
        "FerryCutoverDowntimeHigh",
    ] {
        assert!(names.contains(expected), "{expected} missing from {names:?}");
    }
    let docs = read("docs/operations.md");
    for alert in &alerts {
        let name = rule_name(alert);
        assert!(alert["for"].is_string(), "{name} has no `for`");
        let severity = alert["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning" | "info")),
            "{name}: severity {severity:?}"
        );
        for annotation in ["summary", "description"] {
            let text = alert["annotations"][annotation].as_str().unwrap_or_default();
            assert!(!text.trim().is_empty(), "{name} has no {annotation}");
        }
        assert!(
            docs.contains(&format!("`{name}`")),
            "docs/operations.md does not explain {name}"
        );
    }
}

// === The dashboard ===

/// Every panel, those inside collapsed rows included.
fn panels(list: &Value) -> Vec<Value> {
    let mut all = Vec::new();
    for panel in list.as_array().into_iter().flatten() {
        all.push(panel.clone());
        all.extend(panels(&panel["panels"]));
    }
    all
}

#[test]
fn dashboard_expressions_read_only_exported_metrics() {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("dashboard JSON");
    let schema = dashboard["schemaVersion"].as_u64().unwrap_or_default();
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    assert!(
        variables
            .iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"),
        "no `datasource` variable of type prometheus: {variables:?}"
    );
    let mut expressions = Vec::new();
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard["panels"]).iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().expect("panel title");
        assert!(ids.insert(panel["id"].to_string()), "{title}: duplicate panel id");
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: panel data source"
        );
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
        for target in targets.unwrap_or_else(|| panic!("{title} has no targets")) {
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "{title}: target data source"
            );
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{title}: target without expr"));
            expressions.push((format!("{DASHBOARD} panel {title:?}"), expr.to_string()));
        }
    }
    // The dashboard must work without the recording rules, so only exported names count.
    let problems = unknown_metrics(&expressions, &exported());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let read_by_dashboard: BTreeSet<String> = expressions
        .iter()
        .flat_map(|(_, expr)| metric_names(expr))
        .collect();
    for family in [
        "ferry_synced_bytes_total",
        "ferry_stage_duration_seconds_bucket",
        "ferry_cutover_downtime_seconds_bucket",
        "ferry_migrations_total",
        "ferry_reconcile_errors_total",
        "ferry_triggered_stages_total",
        "ferry_webhook_requests_total",
    ] {
        assert!(read_by_dashboard.contains(family), "no panel reads {family}");
    }
}

// === The kustomization and the ServiceMonitor ===

#[test]
fn kustomization_files_exist_and_the_service_monitor_selects_the_install_service() {
    let kustomization = yaml("manifests/monitoring/kustomization.yaml");
    let generated = kustomization["configMapGenerator"]
        .as_array()
        .into_iter()
        .flatten();
    let files = generated.flat_map(|generator| generator["files"].as_array().cloned().unwrap_or_default());
    let resources = kustomization["resources"].as_array().cloned().unwrap_or_default();
    for file in resources.iter().chain(files.collect::<Vec<_>>().iter()) {
        let file = file.as_str().expect("file name");
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("manifests/monitoring")
            .join(file);
        assert!(path.is_file(), "kustomization names {file}, which does not exist");
    }
    let monitor = yaml("manifests/monitoring/servicemonitor.yaml");
    let service = yaml("manifests/install/service.yaml");
    assert_eq!(monitor["kind"], "ServiceMonitor");
    assert_eq!(monitor["metadata"]["namespace"], service["metadata"]["namespace"]);
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    for (key, value) in selector {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the Service lacks label {key}"
        );
    }
    let ports: Vec<&Value> = service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .collect();
    for endpoint in monitor["spec"]["endpoints"].as_array().expect("endpoints") {
        assert!(
            ports.iter().any(|port| port["name"] == endpoint["port"]),
            "no Service port {endpoint}"
        );
        assert_eq!(endpoint["path"], "/metrics");
    }
}

// === The tokenizer on its own ===

#[test]
fn the_tokenizer_skips_functions_keywords_labels_and_durations() {
    let expr = r#"sum by (le) (rate(ferry_a_bucket{result="fai}led", le=~"1|2"}[5m] offset 1h)) > 1.5e-3
        * on (pod) group_left(le) ferry:b:mean1h or SUM(increase(ferry_c[$__rate_interval]))
        / count without (x) (ferry_d{a='b'} @ start()) unless abs(-0.5) + ${var}"#;
    assert_eq!(
        metric_names(expr),
        ["ferry_a_bucket", "ferry:b:mean1h", "ferry_c", "ferry_d"]
    );
}

#[test]
fn an_unknown_metric_is_named() {
    let known = exported();
    let expressions = [
        (
            "good",
            "sum(increase(ferry_migrations_total{result=\"failed\"}[1h])) > 0",
        ),
        (
            "misspelt",
            "sum(increase(ferry_migration_total{result=\"failed\"}[1h])) > 0",
        ),
        // A histogram's bare name is no series: the buckets, sum and count are.
        ("bare histogram", "rate(ferry_stage_duration_seconds[5m])"),
        ("no metric", "vector(1)"),
    ]
    .map(|(place, expr)| (place.to_string(), expr.to_string()));
    let problems = unknown_metrics(&expressions, &known);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("misspelt") && problems[0].contains("\"ferry_migration_total\""));
    assert!(
        problems[1].starts_with("bare histogram") && problems[1].contains("ferry_stage_duration_seconds")
    );
    assert!(problems[2].starts_with("no metric"));
}
