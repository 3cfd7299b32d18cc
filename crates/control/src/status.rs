//! The migration status machine (eden-spec §5.4) as a pure function: no IO, no clock.
//!
//! `transition(current, action)` returns the next status or the seed's 409 text
//! `Cannot set {Target} migration in status: {Current}` with PascalCase names.

use serde::{Deserialize, Serialize};

/// Lifecycle status of a migration. Serialised snake_case (the seed); parsed in either casing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, no members yet.
    Pending,
    /// Members added, ready to test or execute.
    Ready,
    /// A `test` run is in progress.
    Testing,
    /// Executed: routing installed, data moving.
    Running,
    /// Temporarily stopped; routing frozen, copy suspended.
    Paused,
    /// Cut over to the target.
    Completed,
    /// Failed (test invalid, or a member failed without rollback).
    Failed,
    /// Some members failed and were rolled back alone (`allow_partial`).
    PartialFailure,
    /// Routing returned to the source; data is being copied back (`overwrite_on_reverse`).
    RollingBack,
    /// Fully reverted.
    RolledBack,
}

impl Status {
    /// Every status, for tables and tests.
    pub const ALL: [Status; 10] = [
        Status::Pending,
        Status::Ready,
        Status::Testing,
        Status::Running,
        Status::Paused,
        Status::Completed,
        Status::Failed,
        Status::PartialFailure,
        Status::RollingBack,
        Status::RolledBack,
    ];

    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Ready => "ready",
            Status::Testing => "testing",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::PartialFailure => "partial_failure",
            Status::RollingBack => "rolling_back",
            Status::RolledBack => "rolled_back",
        }
    }

    /// The PascalCase name used in error messages and `status_label` (eden-spec §9 G3).
    pub fn pascal(self) -> &'static str {
        match self {
            Status::Pending => "Pending",
            Status::Ready => "Ready",
            Status::Testing => "Testing",
            Status::Running => "Running",
            Status::Paused => "Paused",
            Status::Completed => "Completed",
            Status::Failed => "Failed",
            Status::PartialFailure => "PartialFailure",
            Status::RollingBack => "RollingBack",
            Status::RolledBack => "RolledBack",
        }
    }

    /// Parses `running`, `Running` or `RUNNING`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Status> {
        let norm: String = s.chars().filter(|c| *c != '_').collect();
        Status::ALL
            .into_iter()
            .find(|st| st.pascal().eq_ignore_ascii_case(&norm))
    }

    /// Active = holds its members: every status but `completed` and `rolled_back`.
    pub fn is_active(self) -> bool {
        !matches!(self, Status::Completed | Status::RolledBack)
    }

    /// Whether the migration's routing is installed in the data plane in this status.
    pub fn routes_traffic(self) -> bool {
        matches!(
            self,
            Status::Running | Status::Paused | Status::PartialFailure
        )
    }
}

/// Something that asks for a status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An API or interlay was added.
    AddMember,
    /// A `test` run starts.
    StartTest,
    /// The `test` run found the migration valid.
    TestPassed,
    /// The `test` run found the migration invalid.
    TestFailed,
    /// `migrate` (execute). The "≥1 member" rule for `pending` is checked by the caller.
    Migrate,
    /// `pause`.
    Pause,
    /// `resume`.
    Resume,
    /// `complete`; `force` also allows it from `paused`.
    Complete {
        /// Skip the "must be running" rule (still not from non-executed states).
        force: bool,
    },
    /// A member failed and the failure handling says the whole migration failed.
    Fail,
    /// A member failed and was rolled back alone (`allow_partial`).
    PartialFail,
    /// `rollback`; `force` also allows it from `ready`, `testing` and `rolling_back`.
    Rollback {
        /// Skip the state checks except for `pending` and `rolled_back`.
        force: bool,
    },
    /// The rollback work finished: at once, or when the copy back (`overwrite_on_reverse`) is
    /// done.
    RollbackDone,
    /// The rollback work failed (the copy back failed).
    RollbackFailed,
}

impl Action {
    /// The status this action aims for (named in the error message).
    pub fn target(self) -> Status {
        match self {
            Action::AddMember | Action::TestPassed => Status::Ready,
            Action::StartTest => Status::Testing,
            Action::TestFailed | Action::Fail | Action::RollbackFailed => Status::Failed,
            Action::Migrate | Action::Resume => Status::Running,
            Action::Pause => Status::Paused,
            Action::Complete { .. } => Status::Completed,
            Action::PartialFail => Status::PartialFailure,
            Action::Rollback { .. } => Status::RollingBack,
            Action::RollbackDone => Status::RolledBack,
        }
    }
}

/// An illegal transition, carrying the seed's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalTransition {
    /// The status the action aimed for.
    pub target: Status,
    /// The status the migration is in.
    pub current: Status,
}

impl std::fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Cannot set {} migration in status: {}",
            self.target.pascal(),
            self.current.pascal()
        )
    }
}

/// The next status after `action` in `current`, or the illegal transition.
pub fn transition(current: Status, action: Action) -> Result<Status, IllegalTransition> {
    use Status::*;
    let ok = match action {
        Action::AddMember => matches!(current, Pending | Ready),
        Action::StartTest => matches!(current, Pending | Ready | Failed),
        Action::TestPassed | Action::TestFailed => current == Testing,
        Action::Migrate => matches!(current, Pending | Ready | Testing | Failed | RolledBack),
        Action::Pause => current == Running,
        Action::Resume => current == Paused,
        Action::Complete { force } => current == Running || (force && current == Paused),
        Action::Fail | Action::PartialFail => current == Running,
        Action::Rollback { force } => {
            matches!(
                current,
                Running | Paused | Completed | Failed | PartialFailure
            ) || (force && matches!(current, Ready | Testing | RollingBack))
        }
        Action::RollbackDone | Action::RollbackFailed => current == RollingBack,
    };
    if ok {
        Ok(action.target())
    } else {
        Err(IllegalTransition {
            target: action.target(),
            current,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    const ACTIONS: [Action; 15] = [
        Action::AddMember,
        Action::StartTest,
        Action::TestPassed,
        Action::TestFailed,
        Action::Migrate,
        Action::Pause,
        Action::Resume,
        Action::Complete { force: false },
        Action::Complete { force: true },
        Action::Fail,
        Action::PartialFail,
        Action::Rollback { force: false },
        Action::Rollback { force: true },
        Action::RollbackDone,
        Action::RollbackFailed,
    ];

    /// Every legal (from, action, to); every pair not listed must be refused.
    const LEGAL: &[(Status, Action, Status)] = &[
        (Pending, Action::AddMember, Ready),
        (Ready, Action::AddMember, Ready),
        (Pending, Action::StartTest, Testing),
        (Ready, Action::StartTest, Testing),
        (Failed, Action::StartTest, Testing),
        (Testing, Action::TestPassed, Ready),
        (Testing, Action::TestFailed, Failed),
        (Pending, Action::Migrate, Running),
        (Ready, Action::Migrate, Running),
        (Testing, Action::Migrate, Running),
        (Failed, Action::Migrate, Running),
        (RolledBack, Action::Migrate, Running),
        (Running, Action::Pause, Paused),
        (Paused, Action::Resume, Running),
        (Running, Action::Complete { force: false }, Completed),
        (Running, Action::Complete { force: true }, Completed),
        (Paused, Action::Complete { force: true }, Completed),
        (Running, Action::Fail, Failed),
        (Running, Action::PartialFail, PartialFailure),
        (Running, Action::Rollback { force: false }, RollingBack),
        (Paused, Action::Rollback { force: false }, RollingBack),
        (Completed, Action::Rollback { force: false }, RollingBack),
        (Failed, Action::Rollback { force: false }, RollingBack),
        (
            PartialFailure,
            Action::Rollback { force: false },
            RollingBack,
        ),
        (Running, Action::Rollback { force: true }, RollingBack),
        (Paused, Action::Rollback { force: true }, RollingBack),
        (Completed, Action::Rollback { force: true }, RollingBack),
        (Failed, Action::Rollback { force: true }, RollingBack),
        (
            PartialFailure,
            Action::Rollback { force: true },
            RollingBack,
        ),
        (Ready, Action::Rollback { force: true }, RollingBack),
        (Testing, Action::Rollback { force: true }, RollingBack),
        (RollingBack, Action::Rollback { force: true }, RollingBack),
        (RollingBack, Action::RollbackDone, RolledBack),
        (RollingBack, Action::RollbackFailed, Failed),
    ];

    #[test]
    fn every_transition_legal_or_refused() {
        let mut checked = 0;
        for from in Status::ALL {
            for action in ACTIONS {
                let want = LEGAL
                    .iter()
                    .find(|(f, a, _)| *f == from && *a == action)
                    .map(|(_, _, to)| *to);
                let got = transition(from, action);
                match want {
                    Some(to) => assert_eq!(got, Ok(to), "{from:?} {action:?}"),
                    None => {
                        let err = got.expect_err(&format!("{from:?} {action:?} must be refused"));
                        assert_eq!(err.current, from);
                        assert_eq!(err.target, action.target());
                    }
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 150);
    }

    #[test]
    fn seed_rollback_text() {
        let err = transition(Pending, Action::Rollback { force: false }).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cannot set RollingBack migration in status: Pending"
        );
        let err = transition(Pending, Action::Rollback { force: true }).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cannot set RollingBack migration in status: Pending"
        );
    }

    #[test]
    fn names_round_trip() {
        for st in Status::ALL {
            assert_eq!(Status::parse(st.as_str()), Some(st));
            assert_eq!(Status::parse(st.pascal()), Some(st));
            let json = serde_json::to_value(st).unwrap();
            assert_eq!(json, serde_json::json!(st.as_str()));
        }
        assert_eq!(Status::parse("bogus"), None);
        assert!(!Completed.is_active() && !RolledBack.is_active() && Failed.is_active());
    }
}
