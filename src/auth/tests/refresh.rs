//! `jwks_url`: fetched in the background, refreshed on an unknown key id, never blocking.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::fixtures::*;
use crate::auth::remote::RefreshPolicy;
use crate::auth::{AuthError, Authenticator};

/// Serves the JWKS in `body` on a loopback port; counts the requests.
struct JwksServer {
    url: String,
    body: Arc<Mutex<String>>,
    hits: Arc<Mutex<u32>>,
    server: Arc<tiny_http::Server>,
}

impl JwksServer {
    fn start(initial: String) -> JwksServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}/certs", server.server_addr().to_ip().unwrap());
        let body = Arc::new(Mutex::new(initial));
        let hits = Arc::new(Mutex::new(0));
        let (s, b, h) = (server.clone(), body.clone(), hits.clone());
        thread::spawn(move || {
            for request in s.incoming_requests() {
                *h.lock() += 1;
                let text = b.lock().clone();
                let _ = request.respond(tiny_http::Response::from_string(text));
            }
        });
        JwksServer {
            url,
            body,
            hits,
            server,
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn unknown_kid_is_refused_at_once_and_triggers_a_refresh() {
    let server = JwksServer::start(jwks(&[rsa()]));
    let mut o = oauth();
    o.jwks_url = Some(server.url.clone());
    let policy = RefreshPolicy {
        min_interval: Duration::from_millis(300),
        period: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
    };
    let auth = Authenticator::with_policy(&auth_config(false, Some(o)), &[], policy).unwrap();
    let rsa_token = sign(rsa(), Some("rsa1"), &claims());
    assert!(wait_for(|| auth
        .authenticate_token(&rsa_token, now())
        .is_ok()));
    assert_eq!(*server.hits.lock(), 1);

    // The issuer adds a key; a token signed with it is refused now, without waiting...
    *server.body.lock() = jwks(&[rsa(), ec()]);
    let ec_token = sign(ec(), Some("ec1"), &claims());
    let started = Instant::now();
    assert_eq!(
        auth.authenticate_token(&ec_token, now()),
        Err(AuthError::UnknownKid { kid: "ec1".into() })
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "must not block"
    );
    // ...and accepted once the refresh it asked for has happened.
    assert!(wait_for(|| auth
        .authenticate_token(&ec_token, now())
        .is_ok()));
    assert_eq!(*server.hits.lock(), 2);

    // A flood of unknown key ids fetches at most once per min_interval.
    let bogus = sign(ec(), Some("bogus"), &claims());
    for _ in 0..200 {
        assert!(auth.authenticate_token(&bogus, now()).is_err());
    }
    thread::sleep(Duration::from_millis(500));
    assert!(*server.hits.lock() <= 4, "hits: {}", *server.hits.lock());
    // Known keys keep working throughout.
    assert!(auth.authenticate_token(&rsa_token, now()).is_ok());
}

#[test]
fn unreachable_jwks_url_does_not_stop_the_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut o = oauth();
    o.jwks_url = Some(format!("http://127.0.0.1:{port}/certs"));
    let auth = Authenticator::new(&auth_config(false, Some(o)), &[]).unwrap();
    assert!(matches!(
        auth.authenticate_token(&sign(rsa(), Some("rsa1"), &claims()), now()),
        Err(AuthError::UnknownKid { .. })
    ));
}
