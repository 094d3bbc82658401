//! Why access was refused. The variants are distinct so logs can say why; what a client is told
//! is the caller's choice (MQTT answers `0x87` for all of them, spec §2.5).

use thiserror::Error;

/// Refusal of [`super::Registry::authorize`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AccessError {
    /// No application of that name is configured.
    #[error("unknown application `{app}`")]
    UnknownApplication {
        /// The requested application.
        app: String,
    },
    /// The application exists but the identity lacks the permission.
    #[error("not authorized for application `{app}`")]
    NotAuthorized {
        /// The requested application.
        app: String,
    },
}

/// Refusal of [`super::Registry::authorize_device_write`] (commands and ingest).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DeviceAccessError {
    /// No application of that name is configured.
    #[error("unknown application `{app}`")]
    UnknownApplication {
        /// The requested application.
        app: String,
    },
    /// The identity may not write to the application.
    #[error("not authorized to write to application `{app}`")]
    NotAuthorized {
        /// The requested application.
        app: String,
    },
    /// The application has no device of that name.
    #[error("unknown device `{device}` in application `{app}`")]
    UnknownDevice {
        /// The requested application.
        app: String,
        /// The requested device.
        device: String,
    },
    /// The device exists but is disabled.
    #[error("device `{device}` in application `{app}` is disabled")]
    DisabledDevice {
        /// The requested application.
        app: String,
        /// The requested device.
        device: String,
    },
}

impl From<AccessError> for DeviceAccessError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::UnknownApplication { app } => Self::UnknownApplication { app },
            AccessError::NotAuthorized { app } => Self::NotAuthorized { app },
        }
    }
}
