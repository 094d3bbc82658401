use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::*;

fn command(name: &str) -> Event {
    Event::new_device_event(
        "app",
        "dev",
        name,
        "dev",
        "test",
        Some("text/plain"),
        Bytes::from(name.to_owned()),
        SystemTime::now(),
    )
}

/// A claim that records what it got (`-` for a wait that ran out).
fn claim(into: &Arc<Mutex<Vec<String>>>) -> Claim {
    let into = into.clone();
    Box::new(move |e: Option<Event>| {
        let got = e.map_or("-".to_owned(), |e| {
            String::from_utf8_lossy(&e.data).into_owned()
        });
        into.lock().unwrap().push(got)
    })
}

/// A long way off: these waits end by a command or a cancel.
fn far(now: Instant) -> Instant {
    now + Duration::from_secs(3600)
}

#[test]
fn a_waiting_device_gets_the_next_command_and_only_one() {
    let inbox = Inbox::new(Keep::For(Duration::from_secs(30)));
    let now = Instant::now();
    let got = Arc::new(Mutex::new(Vec::new()));
    assert!(matches!(
        inbox.wait("app", "dev", now, far(now), claim(&got)),
        Waiting::Queued(_)
    ));
    assert!(inbox.offer("app", "dev", command("one"), now));
    assert!(
        !inbox.offer("app", "dev", command("two"), now),
        "kept: nobody waits now"
    );
    assert_eq!(*got.lock().unwrap(), ["one"]);
    // The next to ask gets the kept one at once.
    assert!(matches!(
        inbox.wait("app", "dev", now, far(now), claim(&got)),
        Waiting::Claimed
    ));
    assert_eq!(*got.lock().unwrap(), ["one", "two"]);
    assert_eq!(inbox.sizes(), (0, 0));
}

#[test]
fn commands_go_to_their_own_device_in_order_and_waiters_in_arrival_order() {
    let inbox = Inbox::new(Keep::For(Duration::from_secs(30)));
    let now = Instant::now();
    let (first, second, other) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    inbox.wait("app", "dev", now, far(now), claim(&first));
    inbox.wait("app", "dev", now, far(now), claim(&second));
    inbox.wait("app", "other", now, far(now), claim(&other));
    inbox.offer("app", "dev", command("a"), now);
    inbox.offer("app", "dev", command("b"), now);
    assert_eq!(*first.lock().unwrap(), ["a"]);
    assert_eq!(*second.lock().unwrap(), ["b"]);
    assert!(other.lock().unwrap().is_empty());
    // Kept ones come out oldest first.
    for c in ["c", "d"] {
        inbox.offer("app", "dev", command(c), now);
    }
    let later = Arc::new(Mutex::new(Vec::new()));
    inbox.wait("app", "dev", now, far(now), claim(&later));
    inbox.wait("app", "dev", now, far(now), claim(&later));
    assert_eq!(*later.lock().unwrap(), ["c", "d"]);
}

#[test]
fn a_cancelled_wait_is_never_claimed() {
    let inbox = Inbox::new(Keep::For(Duration::from_secs(30)));
    let now = Instant::now();
    let got = Arc::new(Mutex::new(Vec::new()));
    let Waiting::Queued(id) = inbox.wait("app", "dev", now, far(now), claim(&got)) else {
        panic!("nothing kept yet");
    };
    assert!(
        inbox.cancel(id),
        "still waiting: the caller answers without a command"
    );
    assert!(!inbox.cancel(id));
    assert!(!inbox.offer("app", "dev", command("late"), now));
    assert!(got.lock().unwrap().is_empty());
    assert_eq!(inbox.sizes(), (1, 0), "kept for the next one to ask");

    // Claimed before the cancel: the cancel says so, and the caller answers with the command.
    let Waiting::Queued(id) = inbox.wait("app", "x", now, far(now), claim(&got)) else {
        panic!()
    };
    inbox.offer("app", "x", command("won"), now);
    assert!(!inbox.cancel(id));
    assert_eq!(*got.lock().unwrap(), ["won"]);
}

#[test]
fn commands_nobody_asks_for_expire_and_are_counted() {
    let ttl = Duration::from_secs(30);
    let inbox = Inbox::new(Keep::For(ttl));
    let t0 = Instant::now();
    inbox.offer("app", "dev", command("old"), t0);
    inbox.offer("app", "dev", command("newer"), t0 + Duration::from_secs(20));
    inbox.sweep(t0 + ttl - Duration::from_millis(1));
    assert_eq!((inbox.expired_total(), inbox.sizes().0), (0, 2));
    inbox.sweep(t0 + ttl);
    assert_eq!((inbox.expired_total(), inbox.sizes().0), (1, 1));
    let got = Arc::new(Mutex::new(Vec::new()));
    inbox.wait(
        "app",
        "dev",
        t0 + Duration::from_secs(49),
        far(t0 + Duration::from_secs(49)),
        claim(&got),
    );
    assert_eq!(*got.lock().unwrap(), ["newer"]);
    inbox.offer("app", "dev", command("gone"), t0);
    inbox.sweep(t0 + Duration::from_secs(3600));
    assert_eq!(inbox.expired_total(), 2);
    assert_eq!(inbox.sizes(), (0, 0));
}

#[test]
fn a_device_that_never_asks_keeps_a_bounded_number() {
    let inbox = Inbox::new(Keep::For(Duration::from_secs(30)));
    let now = Instant::now();
    for i in 0..MAX_KEPT_PER_DEVICE + 5 {
        inbox.offer("app", "dev", command(&i.to_string()), now);
    }
    assert_eq!(inbox.sizes().0, MAX_KEPT_PER_DEVICE);
    assert_eq!(inbox.expired_total(), 5, "the oldest went");
    let got = Arc::new(Mutex::new(Vec::new()));
    inbox.wait("app", "dev", now, far(now), claim(&got));
    assert_eq!(*got.lock().unwrap(), ["5"]);
}

#[test]
fn only_waiting_drops_what_nobody_waits_for() {
    let inbox = Inbox::new(Keep::OnlyWaiting);
    let now = Instant::now();
    assert!(!inbox.offer("app", "dev", command("elsewhere"), now));
    assert_eq!(inbox.sizes(), (0, 0));
    assert_eq!(
        inbox.expired_total(),
        0,
        "not expired: another instance may have delivered it"
    );
    let got = Arc::new(Mutex::new(Vec::new()));
    inbox.wait("app", "dev", now, far(now), claim(&got));
    assert!(inbox.offer("app", "dev", command("here"), now));
    assert_eq!(*got.lock().unwrap(), ["here"]);
}

#[test]
fn a_wait_ends_with_none_at_its_deadline_and_never_twice() {
    let inbox = Inbox::new(Keep::For(Duration::from_secs(30)));
    let now = Instant::now();
    let got = Arc::new(Mutex::new(Vec::new()));
    inbox.wait("app", "dev", now, now + Duration::from_secs(5), claim(&got));
    inbox.wait("app", "dev", now, now + Duration::from_secs(9), claim(&got));
    assert_eq!(
        inbox.expire_waits(now + Duration::from_secs(4)),
        Some(now + Duration::from_secs(5))
    );
    assert!(got.lock().unwrap().is_empty());
    assert_eq!(
        inbox.expire_waits(now + Duration::from_secs(5)),
        Some(now + Duration::from_secs(9))
    );
    assert_eq!(*got.lock().unwrap(), ["-"]);
    // The second one is still there for a command.
    assert!(inbox.offer("app", "dev", command("c"), now));
    assert_eq!(inbox.expire_waits(now + Duration::from_secs(60)), None);
    assert_eq!(*got.lock().unwrap(), ["-", "c"]);
}

#[test]
fn the_timer_thread_ends_waits_on_time() {
    let inbox = Arc::new(Inbox::new(Keep::OnlyWaiting));
    inbox.start_timer().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let now = Instant::now();
    // A far wait first, then a near one: the timer must wake for the nearer deadline.
    inbox.wait("app", "far", now, far(now), claim(&got));
    inbox.wait(
        "app",
        "near",
        now,
        now + Duration::from_millis(200),
        claim(&got),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*got.lock().unwrap(), ["-"]);
    assert!(now.elapsed() >= Duration::from_millis(200));
    assert_eq!(inbox.sizes(), (0, 1), "the far one still waits");
}
