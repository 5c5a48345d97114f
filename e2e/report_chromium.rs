//! `ferry report` of a real migration, opened in a real browser: a stage and a Commit-mode cutover
//! (with verification and the DNS flip) run through the CLI against the sandbox, then `ferry report`
//! writes the page and Debian's headless Chromium renders it twice: a screenshot (a real PNG of the
//! window's size, kept at `<target>/tmp/ferry-report/report.png`) and the DOM, which must hold the
//! figures of the migration in the words the CLI printed, with no page error on Chromium's console.
//! The console check is itself checked on a page with a broken script. No Chromium: the test fails.

#[path = "support/scenario.rs"]
mod scenario;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferry::api::plan::QuiesceMethod;
use ferry::api::{MigMigration, PipelineStep};
use ferry::report::words;
use ferry_sandbox::world::REPO;
use kube::ResourceExt;
use scenario::Scenario;

fn ferry(scenario: &Scenario, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&scenario.sandbox.target.kubeconfig)
        .output()
        .unwrap();
    eprintln!(
        "$ ferry {}\n{}{}-> {:?}",
        args.join(" "),
        text(&output.stdout),
        text(&output.stderr),
        output.status.code()
    );
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Debian's `chromium`, or a failure saying how to get it.
fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "chromium is not installed, so the report cannot be rendered: `apt-get install -y \
             --no-install-recommends chromium` (.ci/run installs it)"
        )
    })
}

/// Runs headless Chromium on `page` with `mode` (`--screenshot=...` or `--dump-dom`), in a profile and
/// HOME of its own, for at most 120 s. Returns (stdout, stderr).
fn render(page: &Path, mode: &str, home: &Path) -> (String, String) {
    let output = Command::new("timeout")
        .arg("120")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2000",
        ])
        .arg(format!("--user-data-dir={}", home.join("profile").display()))
        .arg(mode)
        .arg(format!("file://{}", page.display()))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "chromium {mode} exited with {:?}:\n{stderr}",
        output.status.code()
    );
    (stdout, stderr)
}

/// The lines of Chromium's log that report an error of the page itself (console errors, uncaught
/// exceptions, blocked loads), not of the browser's own machinery.
fn page_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Refused to") || l.contains("ERR_")
        })
        .collect()
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

fn step<'a>(migration: &'a MigMigration, name: &str) -> &'a PipelineStep {
    let status = migration.status.as_ref().unwrap();
    status.pipeline.iter().find(|s| s.name == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_real_migration_renders_in_chromium() {
    chromium(); // before the sandbox starts: no browser, no point
    let scenario = Scenario::start(QuiesceMethod::Commit).await;
    let head_before = scenario.sandbox.git_head();
    scenario::write_files(
        &scenario.sandbox.volume_dir(true),
        &[("base/1", &[7u8; 60_000]), ("base/2", b"two")],
    );

    let stage = ferry(&scenario, &["stage", "--plan", "ferry-demo/shop", "--wait"]);
    assert_eq!(stage.status.code(), Some(0));
    let cutover = ferry(
        &scenario,
        &["cutover", "--plan", "ferry-demo/shop", "--verify", "--wait"],
    );
    assert_eq!(cutover.status.code(), Some(0), "{}", text(&cutover.stderr));
    let status = ferry(&scenario, &["status", "--plan", "ferry-demo/shop"]);

    let mut migrations = scenario
        .migrations()
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    migrations.sort_by_key(|m| m.metadata.creation_timestamp.clone().map(|t| t.0));
    let [staged, cut] = &migrations[..] else {
        panic!("two migrations expected: {migrations:#?}")
    };
    let (bytes, files) = words::synced(step(staged, "WaitForTransfer")).expect("the stage moved data");
    assert!(bytes >= 60_000, "{bytes}");
    let window = cut.status.as_ref().unwrap().downtime.clone().unwrap();
    let downtime = words::duration(window.seconds.unwrap());
    let repo = scenario.sandbox.git.repo_path(REPO);
    let git = Command::new("git")
        .arg("--git-dir")
        .arg(&repo)
        .args(["log", "--format=%H %s", &format!("{head_before}..main")])
        .output()
        .unwrap();
    let commits: Vec<(String, String)> = text(&git.stdout)
        .lines()
        .map(|l| {
            l.split_once(' ')
                .map(|(h, s)| (h.to_string(), s.to_string()))
                .unwrap()
        })
        .collect();
    assert_eq!(commits.len(), 2, "a quiesce and a start commit: {commits:?}");

    // The CLI's words, which the page must repeat.
    let cutover_out = text(&cutover.stdout);
    let quiesce = step_label(ferry::api::Step::QuiesceSource);
    assert!(cutover_out.contains(&quiesce), "{cutover_out}");
    assert!(
        cutover_out.contains(&format!("downtime: {}", words::downtime(&window))),
        "{cutover_out}"
    );
    let status_out = text(&status.stdout);
    assert!(
        status_out.contains(&format!("Succeeded; downtime {downtime}")),
        "{status_out}"
    );

    // What `kubectl get ferry -A` shows of the finished migrations (the printer columns).
    let get = Command::new("kubectl")
        .args(["get", "ferry", "-A"])
        .env("KUBECONFIG", &scenario.sandbox.target.kubeconfig)
        .output()
        .unwrap();
    let listed = text(&get.stdout);
    eprintln!("$ kubectl get ferry -A\n{listed}{}", text(&get.stderr));
    assert!(
        get.status.success() && listed.contains(&cut.name_any()),
        "{listed}"
    );

    // A plan that does not exist: one line, exit 1, no file.
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ferry-report");
    std::fs::create_dir_all(&out_dir).unwrap();
    let nothing = out_dir.join("nope.html");
    let _ = std::fs::remove_file(&nothing);
    let missing = ferry(
        &scenario,
        &[
            "report",
            "--plan",
            "ferry-demo/nope",
            "-o",
            nothing.to_str().unwrap(),
        ],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr).trim(),
        "ferry: MigPlan ferry-demo/nope does not exist"
    );
    assert!(!nothing.exists());
    // Bad input: one line each, nothing written.
    let no_dir = out_dir.join("no-such-dir").join("report.html");
    for (args, cause) in [
        (
            vec![
                "report",
                "--plan",
                "ferry-demo/shop",
                "-o",
                no_dir.to_str().unwrap(),
            ],
            "is not a directory",
        ),
        (
            vec!["report", "--plan", "shop", "-o", nothing.to_str().unwrap()],
            "--plan must be NAMESPACE/NAME, got \"shop\"",
        ),
    ] {
        let refused = ferry(&scenario, &args);
        let err = text(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{err}");
        assert!(err.trim().lines().count() == 1 && err.contains(cause), "{err}");
    }
    assert!(!nothing.exists() && !no_dir.exists());

    let page = out_dir.join("report.html");
    let report = ferry(
        &scenario,
        &[
            "report",
            "--plan",
            "ferry-demo/shop",
            "-o",
            page.to_str().unwrap(),
            "--git-dir",
            repo.to_str().unwrap(),
        ],
    );
    assert_eq!(report.status.code(), Some(0), "{}", text(&report.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    for fetching in ["<script", "src=", "href=", "<link"] {
        assert!(!html.contains(fetching), "{fetching} in the page");
    }

    let home = tempfile::tempdir().unwrap();
    let screenshot = out_dir.join("report.png");
    let _ = std::fs::remove_file(&screenshot);
    let started = std::time::Instant::now();
    let (_, shot_log) = render(
        &page,
        &format!("--screenshot={}", screenshot.display()),
        home.path(),
    );
    let png = std::fs::read(&screenshot).expect("chromium wrote no screenshot");
    assert_eq!(png_size(&png), (1280, 2000));
    // A blank 1280x2000 window compresses to a few KiB; text, tables and the timeline do not.
    assert!(png.len() > 40_000, "a near-empty screenshot: {} bytes", png.len());
    let (dom, dom_log) = render(&page, "--dump-dom", home.path());
    eprintln!(
        "screenshot of the report: {} ({} bytes, both renders {:.1}s)",
        screenshot.display(),
        png.len(),
        started.elapsed().as_secs_f64()
    );
    for log in [&shot_log, &dom_log] {
        assert!(page_errors(log).is_empty(), "page errors: {:?}", page_errors(log));
    }

    let mut expected = vec![
        format!("{} ({bytes} bytes)", words::bytes(bytes)),
        format!("<td class=\"num\">{files}</td>"),
        format!("<b class=\"\">{downtime}</b>"),
        words::downtime(&window),
        quiesce.clone(),
        step_label(ferry::api::Step::VerifyDNS),
        cut.name_any(),
        staged.name_any(),
        "Verified 1 volume(s): source and target are identical.".to_string(),
    ];
    for (sha, subject) in &commits {
        expected.push(sha.clone());
        expected.push(subject.clone());
    }
    for figure in &expected {
        assert!(
            dom.contains(figure.as_str()),
            "{figure} missing from the rendered DOM"
        );
    }
    assert!(
        dom.contains("<rect class=\"downtime\""),
        "the downtime window is drawn"
    );

    // The console check catches a page error when there is one.
    let broken = home.path().join("broken.html");
    std::fs::write(
        &broken,
        "<html><body><script>missingFunction();</script></body></html>",
    )
    .unwrap();
    let (_, broken_log) = render(&broken, "--dump-dom", home.path());
    assert!(
        !page_errors(&broken_log).is_empty(),
        "an uncaught error went unnoticed: {broken_log}"
    );
    scenario.stop().await;
}

/// `Step N/M Name` of `step` in the cutover's itinerary, as the CLI and the report write it.
fn step_label(step: ferry::api::Step) -> String {
    let steps = ferry::api::Itinerary::Final.steps();
    let index = steps.iter().position(|s| *s == step).expect("a cutover step");
    format!("Step {}/{} {}", index + 1, steps.len(), step.as_str())
}
