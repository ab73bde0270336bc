//! On-disk session files under `$XDG_STATE_HOME/tether/sessions/`.
//!
//! * `NAME.json`: the session's record, a [`crate::SessionInfo`] object. Its
//!   `state` is `running` or `ended`; `lost` is never written, it is derived
//!   by readers when the keeper's lock (`NAME.lock`) is not held.
//! * `NAME.screen`: a [`FinalScreen`], written when the job ends.

use serde::{Deserialize, Serialize};

/// The screen a session ended with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalScreen {
    /// Bytes that repaint a terminal with the final screen (a redraw).
    pub redraw: String,
    /// The session's text at the end: history and screen, as logical lines.
    pub text: Vec<String>,
}
