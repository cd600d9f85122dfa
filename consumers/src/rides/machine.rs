//! A ride's life: active, paused, ended, and the only moves between them.

pub use readside::rides::RideStatus;

/// What a command asks of a ride.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Pause an active ride.
    Pause,
    /// Resume a paused ride.
    Resume,
    /// End an active or paused ride.
    End,
}

/// The status `step` leads to from `from`, or why it cannot be taken.
pub fn next(from: RideStatus, step: Step) -> Result<RideStatus, String> {
    use RideStatus::*;
    match (from, step) {
        (Active, Step::Pause) => Ok(Paused),
        (Paused, Step::Resume) => Ok(Active),
        (Active | Paused, Step::End) => Ok(Ended),
        (Paused, Step::Pause) => Err("the ride is already paused".into()),
        (Active, Step::Resume) => Err("the ride is not paused".into()),
        (Ended, _) => Err("the ride has ended".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_legal_moves_are_allowed() {
        use RideStatus::*;
        let all = [
            (Active, Step::Pause, Some(Paused)),
            (Active, Step::Resume, None),
            (Active, Step::End, Some(Ended)),
            (Paused, Step::Pause, None),
            (Paused, Step::Resume, Some(Active)),
            (Paused, Step::End, Some(Ended)),
            (Ended, Step::Pause, None),
            (Ended, Step::Resume, None),
            (Ended, Step::End, None),
        ];
        for (from, step, to) in all {
            assert_eq!(next(from, step).ok(), to, "{from:?} {step:?}");
        }
    }
}
