//! Why a tag is being checked: recorded in logs and Events.

/// What started a check of a tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Poll,
    WindowOpened,
    Retry,
    Hook,
    CatchUp,
}

impl Trigger {
    /// A short, stable name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Poll => "poll",
            Trigger::WindowOpened => "window-opened",
            Trigger::Retry => "retry",
            Trigger::Hook => "push-hook",
            Trigger::CatchUp => "missed-window-catch-up",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_names_are_the_ones_logs_use() {
        let cases = [
            (Trigger::Poll, "poll"),
            (Trigger::WindowOpened, "window-opened"),
            (Trigger::Retry, "retry"),
            (Trigger::Hook, "push-hook"),
            (Trigger::CatchUp, "missed-window-catch-up"),
        ];
        for (trigger, name) in cases {
            assert_eq!(trigger.name(), name, "{trigger:?}");
        }
    }
}
