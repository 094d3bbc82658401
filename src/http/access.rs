//! Who is calling an HTTP route for a device or an application, and the answers when they may
//! not: `401` with the schemes to use, `404` for an unknown application, `403` naming what is
//! missing. Shared by ingest and the device command routes, so both refuse alike.

use super::auth::AuthFailure;
use super::server::{Reply, Request};
use super::HttpState;
use crate::registry::{AccessError, DeviceAccessError, Identity};

const WWW_AUTHENTICATE: &str = "Basic realm=\"mqtt-integration\", Bearer";

pub(crate) fn authenticate(state: &HttpState, request: &Request<'_>) -> Result<Identity, Reply> {
    state
        .auth
        .authenticate(request.header("Authorization"))
        .map_err(|failure| {
            let message = match failure {
                AuthFailure::Missing => {
                    "credentials are required: send `Authorization: Bearer <token>` or \
                                         `Authorization: Basic <user:api-key>`"
                        .to_owned()
                }
                AuthFailure::Invalid(why) => format!("the credentials were refused: {why}"),
            };
            Reply::error(401, message).with_header("WWW-Authenticate", WWW_AUTHENTICATE)
        })
}

fn who(identity: &Identity) -> String {
    match identity {
        Identity::Anonymous => "an anonymous caller".to_owned(),
        Identity::User { name, .. } => format!("user `{name}`"),
    }
}

/// What to tell an anonymous caller who lacks a permission.
fn credentials_hint(identity: &Identity) -> &'static str {
    match identity {
        Identity::Anonymous => {
            "; send credentials (`Authorization: Bearer` or `Basic`) of a user who may"
        }
        Identity::User { .. } => "; ask the owner for the role `manager` or `admin`",
    }
}

pub(crate) fn app_refusal(error: &AccessError, identity: &Identity, app: &str) -> Reply {
    match error {
        AccessError::UnknownApplication { .. } => {
            Reply::error(404, format!("application `{app}` does not exist; check the name"))
        }
        AccessError::NotAuthorized { .. } => Reply::error(
            403,
            format!(
                "{} may not write to application `{app}` (ingest needs the owner or the role `manager` or `admin`){}",
                who(identity),
                credentials_hint(identity)
            ),
        ),
    }
}

pub(crate) fn device_refusal(
    error: &DeviceAccessError,
    identity: &Identity,
    app: &str,
    device: &str,
) -> Reply {
    match error {
        DeviceAccessError::UnknownApplication { .. } => app_refusal(
            &AccessError::UnknownApplication {
                app: app.to_owned(),
            },
            identity,
            app,
        ),
        DeviceAccessError::NotAuthorized { .. } => app_refusal(
            &AccessError::NotAuthorized {
                app: app.to_owned(),
            },
            identity,
            app,
        ),
        DeviceAccessError::UnknownDevice { .. } | DeviceAccessError::DisabledDevice { .. } => {
            Reply::error(403, device_problem(error, app, device))
        }
    }
}

/// Why a device may not send, as the text of an error.
pub(crate) fn device_problem(error: &DeviceAccessError, app: &str, device: &str) -> String {
    match error {
        DeviceAccessError::UnknownApplication { .. } => {
            format!("application `{app}` does not exist")
        }
        DeviceAccessError::NotAuthorized { .. } => {
            format!("not authorized to write to application `{app}`")
        }
        DeviceAccessError::UnknownDevice { .. } => {
            format!("device `{device}` does not exist in application `{app}`; add it to the application's devices")
        }
        DeviceAccessError::DisabledDevice { .. } => {
            format!("device `{device}` of application `{app}` is disabled; enable it to ingest its events")
        }
    }
}
