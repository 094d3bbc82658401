//! Durability: group commit, interval syncs, and a full disk.

use super::*;

#[test]
fn group_commit_syncs_on_another_thread() {
    let (_dir, mut log) = new_log(Options {
        durability: Durability::Always,
        ..options(1 << 20)
    });
    assert_eq!(log.durable(), 0);
    fill(&mut log, 3, 2);
    assert_eq!(log.durable(), 0);
    let point = log.sync_point();
    // Appends go on while the sync runs; they are not covered by it.
    let syncer = std::thread::spawn(move || point.sync().unwrap());
    fill(&mut log, 1, 2);
    let end = syncer.join().unwrap();
    assert_eq!(end, 6);
    log.mark_durable(end);
    assert_eq!(log.durable(), 6);
    assert_eq!(log.sync().unwrap(), 8);
    assert_eq!(log.durable(), 8);
}

#[test]
fn interval_durability_syncs_when_due() {
    let (_dir, mut log) = new_log(Options {
        durability: Durability::Interval(Duration::from_millis(50)),
        ..options(1 << 20)
    });
    fill(&mut log, 1, 2);
    assert_eq!(log.durable(), 0);
    log.sync_if_due(std::time::Instant::now() + Duration::from_millis(60))
        .unwrap();
    assert_eq!(log.durable(), 2);
    std::thread::sleep(Duration::from_millis(60));
    fill(&mut log, 1, 2);
    // The append found the interval passed.
    assert_eq!(log.durable(), 4);
}

#[test]
fn disk_full_is_its_own_error_and_leaves_the_log_consistent() {
    const INNER: &str = "MQI_STORE_DISK_FULL_DIR";
    let Ok(dir) = std::env::var(INNER) else {
        // Run this test again in a private mount namespace with a 256 KiB tmpfs, if the machine
        // lets us make one (user namespaces or root); nothing is mounted outside it.
        let mnt = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let script = format!(
            "mount -t tmpfs -o size=256k tmpfs '{m}' && exec '{e}' --exact backend::embedded::disk::tests::durability::disk_full_is_its_own_error_and_leaves_the_log_consistent --nocapture --test-threads 1",
            m = mnt.path().display(),
            e = exe.display()
        );
        let out = std::process::Command::new("unshare")
            .args(["-rm", "sh", "-c", &script])
            .env(INNER, mnt.path())
            .output();
        match out {
            Ok(out) if out.status.success() => {
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(stdout.contains("1 passed"), "{stdout}");
            }
            Ok(out)
                if String::from_utf8_lossy(&out.stderr).contains("mount")
                    || String::from_utf8_lossy(&out.stderr).contains("unshare") =>
            {
                eprintln!(
                    "skipped: cannot make a small file system here: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(out) => panic!(
                "in the namespace: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("skipped: no unshare(1): {e}"),
        }
        return;
    };
    let dir = Path::new(&dir).join("log");
    let opts = Options {
        durability: Durability::Always,
        ..options(64 << 10)
    };
    let mut log = Log::open(&dir, opts.clone()).unwrap();
    let big = vec![0xA5u8; 8 << 10];
    let mut acked = 0;
    let err = loop {
        let r = RecordIn {
            timestamp: acked,
            key: b"k",
            value: &big,
        };
        match log.append(&[r]) {
            Ok(range) => {
                log.sync().unwrap();
                acked = range.end;
            }
            Err(e) => break e,
        }
        assert!(acked < 1000, "the disk never filled");
    };
    assert!(err.is_disk_full(), "{err}");
    assert!(err.to_string().contains("disk is full"), "{err}");
    assert_eq!(log.latest(), acked);
    // The files hold exactly what was acknowledged: a reopen finds nothing torn.
    drop(log);
    let mut log = Log::open(&dir, opts).unwrap();
    assert_eq!(log.recovery().truncations, 0);
    assert_eq!(log.latest(), acked);
    let got = {
        let mut v = Vec::new();
        let mut from = 0;
        while let Some(last) = log
            .read(from, 1 << 20)
            .unwrap()
            .into_iter()
            .inspect(|r| v.push(r.offset))
            .last()
        {
            from = last.offset + 1;
        }
        v
    };
    assert_eq!(got, (0..acked).collect::<Vec<_>>());
    // Space freed: appending works again.
    log.apply_retention(0, Some(0), None).unwrap();
    let r = RecordIn {
        timestamp: 0,
        key: b"k",
        value: b"small",
    };
    assert_eq!(log.append(&[r]).unwrap(), acked..acked + 1);
    log.sync().unwrap();
}
