"""`disc db upgrade`, `disc keys`, `disc serve` as an operator runs them, from another directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from disc_cli.processes import free_port


def disc(args, env, cwd, **kwargs):
    return subprocess.run([sys.executable, "-m", "disc_cli.main", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_upgrade_keys_and_serve(tmp_path):
    env = {**os.environ, "DISC_HOME": str(tmp_path / "home"), "PYTHONPATH": os.getcwd()}
    env.pop("DISC_DATABASE_URL", None)
    env.pop("DISC_BROKER_URL", None)
    port = free_port()

    refused = disc(["serve", "--port", str(port)], env, tmp_path)
    assert refused.returncode == 2 and "run `disc db upgrade`" in refused.stderr

    upgraded = disc(["db", "upgrade"], env, tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert disc(["db", "upgrade"], env, tmp_path).returncode == 0  # a second run changes nothing

    created = disc(["keys", "create", "--name", "ci", "--scopes", "jobs:read", "--lineage", "news"], env, tmp_path)
    token = created.stdout.strip()
    assert created.returncode == 0 and token.startswith("disc_")
    listed = disc(["keys", "list"], env, tmp_path).stdout
    assert "ci" in listed and "news" in listed and token not in listed
    bad_scope = disc(["keys", "create", "--name", "x", "--scopes", "root"], env, tmp_path)
    assert bad_scope.returncode == 2 and "unknown scope" in bad_scope.stderr

    server = subprocess.Popen([sys.executable, "-m", "disc_cli.main", "serve", "--port", str(port)], env=env,
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "disc serve did not come up"
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/jobs", headers=headers).status_code == 200
        assert httpx.get(f"{url}/jobs").status_code == 401
        assert httpx.get(f"{url}/readyz").json()["checks"] == {"database": "ok", "broker": "ok"}
        assert disc(["keys", "revoke", "1"], env, tmp_path).returncode == 0
        # The API remembers a verified key for DISC_API_KEY_CACHE_S (5 s): revoked within that.
        revoked = time.monotonic()
        while httpx.get(f"{url}/jobs", headers=headers).status_code == 200:
            assert time.monotonic() - revoked < 5.5, "the revoked key still works after the cache lifetime"
            time.sleep(0.1)
        assert httpx.get(f"{url}/jobs", headers=headers).status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_every_command_has_help(tmp_path):
    for command in (["serve"], ["db", "upgrade"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"]):
        shown = disc([*command, "--help"], dict(os.environ, PYTHONPATH=os.getcwd()), tmp_path)
        assert shown.returncode == 0 and "usage: disc" in shown.stdout


def test_demo_draws_the_epoch_trajectory_from_the_job_events(capsys):
    from disc_cli.demo import print_trajectory

    point = {"retention_kl_vs_parent": 0.0, "knowledge": 0.0, "within_budget": True, "kept": True}
    events = [{"kind": "trained", "message": "", "data": {}},
              {"kind": "epoch", "message": "", "data": {**point, "epoch": 0}},
              {"kind": "epoch", "message": "", "data": {**point, "epoch": 1, "retention_kl_vs_parent": 0.31,
                                                         "knowledge": 0.42}},
              {"kind": "epoch", "message": "", "data": {**point, "epoch": 2, "retention_kl_vs_parent": 0.71,
                                                         "knowledge": 0.55, "within_budget": False, "kept": False}},
              {"kind": "epoch_selected", "message": "kept epoch 1; stopped: epoch 2: retention KL 0.7100 exceeds "
                                                    "the budget 0.6000", "data": {}}]
    print_trajectory(events)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[3:6]] == ["0", "1", "2"]
    assert lines[4].split()[1:] == ["0.3100", "0.42", "kept"] and lines[5].endswith("over budget")
    assert lines[6].strip().startswith("kept epoch 1; stopped")
    print_trajectory(events[:1])  # a job without a budget draws nothing
    assert capsys.readouterr().out == ""


def test_demo_runs_a_sample_update_through_the_embedded_service(tmp_path, tiny_model):
    """`disc demo` end to end on the tiny model: migrate, key, worker and API processes, the job over
    HTTP, the trajectory and the new version's scores."""
    import json

    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps({"documents": [
        {"id": "a", "text": "The Zorblat Company opened a factory in Lyon. The factory makes blue bicycles. "
                            "Its director is Mara Quint."},
        {"id": "b", "text": "Kelvin Ostrava won the chess open in Prague. He was nineteen. He lives in Brno."}],
        "probes": [{"question": "Where did the Zorblat Company open a factory?",
                    "options": ["Lyon", "Brno", "Oslo", "Tartu"], "answer": 0}]}))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    home = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "disc_cli.main", "demo", "--home", str(home), "--model", tiny_model,
                           "--sample", str(sample), "--timeout", "600"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "job " in done.stdout and "2 documents, 1 probes" in done.stdout
    assert "kept epoch" in done.stdout                       # the retention budget's trajectory
    assert "version 1 of 'default'" in done.stdout and "now latest" in done.stdout
    artifact = next(line for line in done.stdout.splitlines() if line.startswith("artifact: "))
    assert (home / "artifacts").is_dir() and str(home) in artifact
    assert (home / "worker.log").exists() and (home / "api.log").exists()


def test_demo_posts_the_method_it_was_given_and_otherwise_leaves_it_to_the_service():
    from disc_cli.demo import update_body

    sample = {"documents": [{"text": "A. B."}], "probes": [{"question": "?", "options": ["a", "b"], "answer": 0}]}
    assert update_body(sample, None) == {"documents": sample["documents"], "probes": sample["probes"]}
    assert update_body(sample, "sft_kl")["method"] == "sft_kl"
    done = subprocess.run([sys.executable, "-m", "disc_cli.main", "demo", "--method", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "invalid choice: 'nope'" in done.stderr
