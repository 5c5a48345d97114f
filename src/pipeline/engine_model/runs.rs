//! The generated runs (proptest) and the findings kept as deterministic runs.

use proptest::prelude::*;

use super::*;

fn spec() -> impl Strategy<Value = Spec> {
    let itinerary = prop_oneof![
        1 => Just(Itinerary::Stage),
        2 => Just(Itinerary::Final),
        1 => Just(Itinerary::Rollback),
    ];
    let flags = (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    );
    let sizes = (0usize..3, 0..=Itinerary::Final.steps().len());
    let flaky = prop::option::weighted(0.15, 0..Itinerary::Final.steps().len());
    (itinerary, flags, sizes, flaky).prop_map(
        |(itinerary, (quiesce, dns, verify, commit, hooks), (volumes, cut_over_steps), flaky)| Spec {
            itinerary,
            quiesce: quiesce || itinerary == Itinerary::Rollback,
            dns,
            verify,
            commit,
            hooks,
            volumes,
            cut_over_steps,
            flaky,
        },
    )
}

fn event() -> impl Strategy<Value = Event> {
    let report = prop_oneof![
        20 => Just(Report::Done),
        2 => Just(Report::InProgress),
        3 => Just(Report::Retry),
        1 => Just(Report::Skipped),
        1 => Just(Report::Warned),
        1 => Just(Report::Failed),
    ];
    let effect = || prop_oneof![Just(Effect::Nothing), Just(Effect::Part), Just(Effect::All)];
    let took_ms = || prop_oneof![Just(0u16), 1u16..5000];
    prop_oneof![
        28 => (report, effect(), took_ms()).prop_map(|(report, effect, took_ms)| Event::Step {
            report,
            effect,
            took_ms
        }),
        2 => (effect(), took_ms()).prop_map(|(effect, took_ms)| Event::Crash { effect, took_ms }),
        2 => Just(Event::Restart),
        1 => Just(Event::PvcAppears),
    ]
}

/// Plays `events` on a new migration of `spec`, checking every promise before and after each.
fn play(spec: Spec, events: impl IntoIterator<Item = Event>) -> Model {
    let mut model = Model::new(spec);
    model.check();
    for event in events {
        model.apply(event);
        model.check();
    }
    model
}

proptest! {
    // Findings become deterministic tests below, so no seeds file is written into the source tree.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_run_keeps_the_pipelines_promises(
        spec in spec(),
        events in prop::collection::vec(event(), 1..120),
    ) {
        play(spec, events);
    }
}

// === findings, as deterministic runs ===

fn done(took_ms: u16) -> Event {
    Event::Step {
        report: Report::Done,
        effect: Effect::All,
        took_ms,
    }
}

fn cutover(quiesce: bool, volumes: usize) -> Spec {
    Spec {
        itinerary: Itinerary::Final,
        quiesce,
        dns: true,
        verify: true,
        commit: false,
        hooks: false,
        volumes,
        cut_over_steps: 0,
        flaky: None,
    }
}

/// `quiescePods: false` stops nothing, so the cutover has no downtime: its QuiesceSource (completed with
/// the NotQuiesced warning) used to open a window that VerifyDNS (skipped) closed, and a cutover that
/// never stopped the app reported a downtime and fed `ferry_cutover_downtime_seconds`.
#[test]
fn a_cutover_without_quiesce_has_no_downtime_window() {
    let model = play(cutover(false, 1), (0..20).map(|_| done(700)));
    let status = model.stored();
    assert!(condition::is_true(&status.conditions, "Succeeded"));
    assert!(condition::find(&status.conditions, "SourceNotQuiesced").is_some());
    assert_eq!(status.downtime, None);
    assert!(!model.world.quiesce_ran && !model.world.dns_flipped);
    // With quiescePods the same run has its window.
    let model = play(cutover(true, 1), (0..20).map(|_| done(700)));
    assert!(model.stored().downtime.is_some_and(|w| w.seconds.is_some()));
}

/// The volume set is fixed by the first status the API server holds: a controller that dies in Prepare
/// (before that write) starts again with the discovery of then, a PVC that appears after it does not
/// join, and the syncs tell about it (the durable VolumesNotMoved warning, there at the end).
#[test]
fn the_volume_set_is_the_first_written_one_and_a_later_pvc_is_reported() {
    let crash = Event::Crash {
        effect: Effect::All,
        took_ms: 10,
    };
    let events = [
        crash,
        Event::PvcAppears,
        done(10),
        Event::PvcAppears,
        Event::Restart,
    ]
    .into_iter()
    .chain((0..20).map(|_| done(10)));
    let model = play(cutover(true, 1), events);
    let status = model.stored();
    assert!(condition::is_true(&status.conditions, "Succeeded"));
    assert_eq!(status.volumes, Some(vec![volume(0), volume(1)]));
    assert_eq!(
        model.world.final_synced,
        Some(vec!["data-0".into(), "data-1".into()])
    );
    let warning = condition::find(&status.conditions, "VolumesNotMoved").expect("the warning");
    assert!(
        warning.message.as_deref().unwrap().contains("data-2"),
        "{warning:?}"
    );
}
