"""Command line (spec 6): check-config, config errors, api-key."""

import subprocess

import pytest

from conftest import binary_path, free_port, make_config


def run(*args, timeout=10):
    return subprocess.run([str(binary_path()), *args], capture_output=True, timeout=timeout)


def test_check_config_ok(tmp_path):
    cfg = tmp_path / "ok.toml"
    cfg.write_text(make_config(free_port(), free_port()))
    r = run("check-config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert b"ok" in r.stdout + r.stderr


def test_config_error_exit_2_names_file_and_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[server]\nthreads = "many"\n')
    for args in (["check-config", str(cfg)], ["--config", str(cfg)]):
        r = run(*args)
        assert r.returncode == 2, (args, r.stderr)
        err = r.stderr.decode()
        assert "bad.toml" in err and "server.threads" in err, err


def test_missing_config_file_exit_2(tmp_path):
    r = run("--config", str(tmp_path / "nope.toml"))
    assert r.returncode == 2
    assert b"nope.toml" in r.stderr
