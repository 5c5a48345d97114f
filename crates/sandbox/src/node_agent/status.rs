//! The node agent's picture of one pod (what each container is doing) and the pure rendering of it
//! into the `status` a kubelet would write: phase, conditions, container statuses.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
    HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The address agent-run pods report: their processes listen on this machine's loopback.
pub(crate) const LOOPBACK: &str = "127.0.0.1";

/// Now, as an API timestamp (whole seconds, as the API server stores them).
pub(crate) fn now() -> Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    Time(k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// How a container instance ended.
#[derive(Debug, Clone)]
pub(crate) struct Terminated {
    /// Exit code; 128 + signal number when a signal ended it (as container runtimes report).
    pub(crate) exit_code: i32,
    /// The signal that ended it, if any.
    pub(crate) signal: Option<i32>,
    /// `Completed`, `Error`, `StartError` or `ContainerCannotRun`.
    pub(crate) reason: String,
    /// The termination message (file contents, or the log tail with `FallbackToLogsOnError`).
    pub(crate) message: Option<String>,
    /// When the process started (or when starting it was attempted).
    pub(crate) started_at: Time,
    /// When it ended.
    pub(crate) finished_at: Time,
}

/// What a container is doing now.
#[derive(Debug, Clone)]
pub(crate) enum State {
    /// Not running: being prepared (`ContainerCreating`, `PodInitializing`), waiting to restart, or
    /// its image is not on the node (`ErrImagePull`, with a message).
    Waiting { reason: String, message: Option<String> },
    /// Its process runs since `started_at`.
    Running { started_at: Time },
    /// Its last process ended.
    Terminated(Terminated),
}

/// One container of the pod.
#[derive(Debug, Clone)]
pub(crate) struct ContainerModel {
    /// Container name.
    pub(crate) name: String,
    /// Image as written in the spec (never pulled).
    pub(crate) image: String,
    /// Current state.
    pub(crate) state: State,
    /// The previous instance's end, once it was restarted.
    pub(crate) last_state: Option<Terminated>,
    /// How many times it was restarted.
    pub(crate) restart_count: i32,
    /// Terminated for good: no restart follows.
    pub(crate) done: bool,
    /// `sandbox://<pid>` of the current or last process.
    pub(crate) container_id: Option<String>,
}

impl ContainerModel {
    /// A container not started yet, waiting for `reason`.
    pub(crate) fn waiting(name: &str, image: Option<&str>, reason: &str) -> Self {
        Self {
            name: name.to_string(),
            image: image.unwrap_or_default().to_string(),
            state: State::Waiting {
                reason: reason.to_string(),
                message: None,
            },
            last_state: None,
            restart_count: 0,
            done: false,
            container_id: None,
        }
    }

    fn succeeded(&self) -> bool {
        self.done && matches!(&self.state, State::Terminated(t) if t.exit_code == 0)
    }

    fn failed(&self) -> bool {
        self.done && !self.succeeded()
    }
}

/// The whole pod as the agent sees it.
#[derive(Debug, Clone)]
pub(crate) struct PodModel {
    /// Init containers, in spec order.
    pub(crate) init: Vec<ContainerModel>,
    /// Regular containers, in spec order.
    pub(crate) main: Vec<ContainerModel>,
    /// When the agent accepted the pod.
    pub(crate) start_time: Time,
    /// Pod-level message (why it failed, with the failed containers' log tails).
    pub(crate) message: Option<String>,
}

impl PodModel {
    /// `Pending`, `Running`, `Succeeded` or `Failed`, as a kubelet derives it from container states.
    pub(crate) fn phase(&self) -> &'static str {
        if self.init.iter().any(ContainerModel::failed) {
            return "Failed";
        }
        if !self.init.iter().all(ContainerModel::succeeded) {
            return "Pending";
        }
        if self.main.iter().all(|c| c.done) {
            return if self.main.iter().all(ContainerModel::succeeded) {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if self
            .main
            .iter()
            .any(|c| !matches!(c.state, State::Waiting { .. }) || c.restart_count > 0)
        {
            "Running"
        } else {
            "Pending"
        }
    }

    /// The pod's `status` as a kubelet would write it.
    pub(crate) fn render(&self) -> PodStatus {
        let phase = self.phase();
        let initialized = self.init.iter().all(ContainerModel::succeeded);
        let all_running = self.main.iter().all(|c| matches!(c.state, State::Running { .. }));
        let terminal_reason = matches!(phase, "Succeeded" | "Failed").then(|| "PodCompleted".to_string());
        let condition = |type_: &str, status: bool, reason: Option<String>| PodCondition {
            type_: type_.to_string(),
            status: if status { "True" } else { "False" }.to_string(),
            reason: if status { None } else { reason },
            last_transition_time: Some(self.start_time.clone()),
            ..PodCondition::default()
        };
        let not_ready = terminal_reason
            .clone()
            .or_else(|| Some("ContainersNotReady".into()));
        PodStatus {
            phase: Some(phase.to_string()),
            conditions: Some(vec![
                condition("PodReadyToStartContainers", true, None),
                condition(
                    "Initialized",
                    initialized,
                    Some("ContainersNotInitialized".into()),
                ),
                condition("Ready", all_running, not_ready.clone()),
                condition("ContainersReady", all_running, not_ready),
                condition("PodScheduled", true, None),
            ]),
            host_ip: Some(LOOPBACK.into()),
            host_ips: Some(vec![HostIP { ip: LOOPBACK.into() }]),
            pod_ip: Some(LOOPBACK.into()),
            pod_ips: Some(vec![PodIP { ip: LOOPBACK.into() }]),
            start_time: Some(self.start_time.clone()),
            message: self.message.clone(),
            init_container_statuses: (!self.init.is_empty())
                .then(|| self.init.iter().map(container_status).collect()),
            container_statuses: Some(self.main.iter().map(container_status).collect()),
            ..PodStatus::default()
        }
    }
}

fn container_status(model: &ContainerModel) -> ContainerStatus {
    let running = matches!(model.state, State::Running { .. });
    ContainerStatus {
        name: model.name.clone(),
        image: model.image.clone(),
        image_id: String::new(),
        container_id: model.container_id.clone(),
        ready: running,
        started: Some(running),
        restart_count: model.restart_count,
        state: Some(container_state(&model.state)),
        last_state: Some(
            model
                .last_state
                .as_ref()
                .map(|t| container_state(&State::Terminated(t.clone())))
                .unwrap_or_default(),
        ),
        ..ContainerStatus::default()
    }
}

fn container_state(state: &State) -> ContainerState {
    match state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..ContainerState::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started_at.clone()),
            }),
            ..ContainerState::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: t.exit_code,
                signal: t.signal,
                reason: Some(t.reason.clone()),
                message: t.message.clone().filter(|m| !m.is_empty()),
                started_at: Some(t.started_at.clone()),
                finished_at: Some(t.finished_at.clone()),
                container_id: None,
            }),
            ..ContainerState::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(exit_code: i32) -> State {
        State::Terminated(Terminated {
            exit_code,
            signal: None,
            reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
            message: Some("done".into()),
            started_at: now(),
            finished_at: now(),
        })
    }

    fn container(state: State, done: bool) -> ContainerModel {
        ContainerModel {
            state,
            done,
            ..ContainerModel::waiting("c", Some("img"), "ContainerCreating")
        }
    }

    fn pod(init: Vec<ContainerModel>, main: Vec<ContainerModel>) -> PodModel {
        PodModel {
            init,
            main,
            start_time: now(),
            message: None,
        }
    }

    #[test]
    fn phase_follows_container_states() {
        let waiting = container(
            State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            false,
        );
        let running = container(State::Running { started_at: now() }, false);
        assert_eq!(pod(vec![], vec![waiting.clone()]).phase(), "Pending");
        assert_eq!(
            pod(vec![running.clone()], vec![waiting.clone()]).phase(),
            "Pending"
        );
        assert_eq!(pod(vec![], vec![running.clone()]).phase(), "Running");
        assert_eq!(
            pod(vec![], vec![container(ended(0), true), running.clone()]).phase(),
            "Running"
        );
        assert_eq!(pod(vec![], vec![container(ended(0), true)]).phase(), "Succeeded");
        assert_eq!(
            pod(vec![], vec![container(ended(0), true), container(ended(2), true)]).phase(),
            "Failed"
        );
        assert_eq!(
            pod(vec![container(ended(1), true)], vec![waiting]).phase(),
            "Failed"
        );
        // Terminated but about to restart: still Running.
        assert_eq!(pod(vec![], vec![container(ended(1), false)]).phase(), "Running");
    }

    #[test]
    fn renders_a_kubelet_like_status() {
        let status = pod(
            vec![],
            vec![container(State::Running { started_at: now() }, false)],
        )
        .render();
        assert_eq!(status.pod_ip.as_deref(), Some("127.0.0.1"));
        let ready = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        let statuses = status.container_statuses.unwrap();
        assert!(statuses[0].ready && statuses[0].state.as_ref().unwrap().running.is_some());
        assert!(status.init_container_statuses.is_none());

        let done = pod(vec![], vec![container(ended(3), true)]).render();
        let terminated = done.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(
            (terminated.exit_code, terminated.message.as_deref()),
            (3, Some("done"))
        );
        let ready = done
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("PodCompleted"))
        );
    }
}
