#!/usr/bin/env python3
"""End-to-end test of the Tideline desktop app on its real window.

Drives the built app through WebKitWebDriver (W3C WebDriver, Python stdlib only):
starts it with an empty config directory, adds a real database with a folder
destination through the UI, writes to the database from another process, waits for
"In sync", opens the restore points, restores a copy at the earlier point and checks
its rows; WebDAV destinations against `rclone serve webdav` (a wrong password named by
Test connection, a database backed up to WebDAV reaching In sync), the SFTP step
refusing a host key line that is not one, a database backed up to Google Cloud Storage
(`gcp-storage-emulator`, reached through STORAGE_EMULATOR_HOST as Litestream reaches
it) reaching In sync, the Azure Blob step naming a missing field; then the error path:
an unwritable destination shows a clear error.

Usage: app_e2e.py BINARY SCREENSHOT_DIR   (run under xvfb-run and dbus-run-session)
Every wait is bounded; only processes this script started are stopped, by PID.
"""
import base64
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GCS_EMULATOR = os.environ.get("GCS_EMULATOR") or os.path.join(ROOT, ".tools", "gcs", "bin", "gcp-storage-emulator")
GCS_BUCKET = "e2e"
BIN = os.path.abspath(sys.argv[1])
SHOTS = os.path.abspath(sys.argv[2])
os.makedirs(SHOTS, exist_ok=True)
passed, failed = 0, 0


def notes_count(path):
    """Rows in `notes`, with the connection closed at once: a connection left to the
    garbage collector keeps the database open, which an in-place restore refuses."""
    c = sqlite3.connect(path)
    try:
        return c.execute("SELECT count(*) FROM notes").fetchone()[0]
    finally:
        c.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening(port):
    """Whether something accepts connections on 127.0.0.1:`port`."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


PORT = free_port()
BASE = f"http://127.0.0.1:{PORT}"


def call(method, path, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"{}").get("value")
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{method} {path}: {e.code} {e.read()[:500]!r}") from None


class Session:
    def __init__(self, sid):
        self.sid = sid

    def js(self, script, *args):
        return call("POST", f"/session/{self.sid}/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        v = call("POST", f"/session/{self.sid}/element", {"using": "css selector", "value": css})
        return next(iter(v.values()))

    def click(self, css):
        call("POST", f"/session/{self.sid}/element/{self.find(css)}/click", {})

    def type(self, css, text):
        el = self.find(css)
        call("POST", f"/session/{self.sid}/element/{el}/clear", {})
        if text:  # WebKitWebDriver refuses empty text: clearing is enough
            call("POST", f"/session/{self.sid}/element/{el}/value", {"text": text})

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", css)

    def wait(self, what, fn, timeout=30):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                last = fn()
                if last:
                    return last
            except RuntimeError as e:
                last = e
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")

    def shot(self, name):
        time.sleep(0.8)  # the screenshot can lag the DOM by a repaint
        png = call("GET", f"/session/{self.sid}/screenshot")
        with open(os.path.join(SHOTS, name), "wb") as f:
            f.write(base64.b64decode(png))


def check(name, fn):
    global passed, failed
    t0 = time.time()
    try:
        fn()
        passed += 1
        print(f"ok   {name} ({time.time() - t0:.1f} s)", flush=True)
        return True
    except Exception as e:  # noqa: BLE001 - report and go on
        failed += 1
        print(f"FAIL {name}: {e}", flush=True)
        return False


def app_processes(driver_pid):
    """The app's process (first) and its web view's processes, found under the driver."""
    children = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(pid))
    app = [p for p in children.get(driver_pid, []) if os.path.realpath(f"/proc/{p}/exe") == os.path.realpath(BIN)]
    if not app:
        return []
    out, todo = [app[0]], list(children.get(app[0], []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid):
    """User + system CPU seconds of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def db_state(s, path):
    return s.js("const li = [...document.querySelectorAll('li.db')].find(l => l.dataset.path === arguments[0]);"
                "return li ? {state: li.dataset.state, txid: li.querySelector('.txid').textContent,"
                " err: (li.querySelector('.err') || {}).textContent || null} : null;", path)


def main():
    tmp = tempfile.mkdtemp(prefix="tideline-e2e-")
    config_dir = os.path.join(tmp, "config")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    db = os.path.join(data, "app.db")
    backup = os.path.join(tmp, "backup")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes (body) VALUES (?)", [("one",), ("two",), ("three",)])
    conn.commit()
    conn.close()

    servers = []  # the test servers this script starts, stopped by PID at the end
    # The GCS emulator starts first: the app reads STORAGE_EMULATOR_HOST when it starts.
    gcs_dir = os.path.join(tmp, "gcs")
    os.makedirs(gcs_dir)
    gcs_port = free_port()
    servers.append(subprocess.Popen(
        [GCS_EMULATOR, "start", "--host", "127.0.0.1", "--port", str(gcs_port),
         "--default-bucket", GCS_BUCKET, "--quiet"],
        env=dict(os.environ, STORAGE_BASE=gcs_dir), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=open(gcs_dir + ".log", "w")))
    env = dict(os.environ, TAURI_WEBVIEW_AUTOMATION="true", TIDELINE_CONFIG_DIR=config_dir,
               STORAGE_EMULATOR_HOST=f"127.0.0.1:{gcs_port}")
    log = open(os.path.join(SHOTS, "webdriver.log"), "w")
    driver = subprocess.Popen(["WebKitWebDriver", f"--port={PORT}"], env=env, stdout=log, stderr=subprocess.STDOUT)
    sid = None
    try:
        deadline = time.time() + 20
        while True:
            try:
                call("GET", "/status", timeout=2)
                break
            except (OSError, RuntimeError):
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"webkitgtk:browserOptions": {"binary": BIN, "args": []}}}}
        sid = call("POST", "/session", caps, timeout=60)["sessionId"]
        s = Session(sid)
        state = {}

        def first_run():
            s.wait("the window to be ready", lambda: s.js("return document.body.dataset.ready === 'true';"))
            assert s.js("return !document.getElementById('view-empty').hidden;"), "empty state is shown"
            assert "Add a database" in s.text("#empty-add")
            s.shot("01-first-run.png")

        def add_database():
            s.click("#empty-add")
            s.type("#add-path", db)
            s.click("#add-check")
            s.wait("the database check", lambda: "WAL mode" in (s.text("#add-db-info") or ""))
            s.type("#add-folder", backup)
            s.shot("02-add-database.png")
            s.click("#add-submit")
            s.wait("the list", lambda: db_state(s, db))

        def reaches_in_sync():
            st = s.wait("In sync", lambda: (lambda v: v if v and v["state"] == "in_sync" and "TXID" in v["txid"] else None)(db_state(s, db)))
            state["txid_before"] = int(st["txid"].split()[-1])
            assert s.text("li.db .state-text") == "In sync"
            time.sleep(1.5)  # so the next restore point has a later time

        def writes_from_another_process():
            subprocess.run([sys.executable, "-c",
                            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
                            "c.executemany('INSERT INTO notes (body) VALUES (?)', [('four',),('five',)]); c.commit()", db],
                           check=True, timeout=30)
            st = s.wait("the new rows in sync", lambda: (lambda v: v if v and v["state"] == "in_sync" and int(v["txid"].split()[-1]) > state["txid_before"] else None)(db_state(s, db)))
            state["txid_after"] = int(st["txid"].split()[-1])
            s.shot("03-database-list.png")

        def ten_idle_databases_cost_almost_nothing():
            # Nine more databases beside app.db, each with its own folder destination.
            for i in range(9):
                extra = os.path.join(data, f"idle{i}.db")
                c = sqlite3.connect(extra)
                c.execute("PRAGMA journal_mode=WAL")
                c.execute("CREATE TABLE t (x)")
                c.execute("INSERT INTO t VALUES (1)")
                c.commit()
                c.close()
                s.click("#nav-add")
                s.type("#add-path", extra)
                s.type("#add-folder", os.path.join(tmp, f"backup-idle{i}"))
                s.click("#add-submit")
                s.wait(f"idle{i}.db in sync", lambda: (db_state(s, extra) or {}).get("state") == "in_sync")
            s.click("#nav-list")
            # The application's connections stay open, as a running application's would.
            held = [sqlite3.connect(os.path.join(data, f"idle{i}.db")) for i in range(9)]
            try:
                time.sleep(5)  # settle: the last captures and uploads
                procs = app_processes(driver.pid)
                assert procs, "the app's process is found"
                before = {p: cpu_seconds(p) for p in procs}
                window = 20
                time.sleep(window)
                used = {p: cpu_seconds(p) - before[p] for p in procs}
            finally:
                for c in held:
                    c.close()
            app_pid = procs[0]
            share = used[app_pid] / window * 100
            web = sum(v for p, v in used.items() if p != app_pid) / window * 100
            print(f"    idle CPU with 10 databases over {window} s: app (engine) {used[app_pid]:.2f} s = {share:.2f} % of a core;"
                  f" web view processes {web:.2f} % of a core")
            # A regression guard, not a benchmark: a spinning task costs a whole core.
            assert share < 10, f"the app used {share:.1f} % of a core with 10 idle databases"

        def restore_points():
            s.click("li.db .restore-btn")
            s.wait("restore points", lambda: s.js("return document.querySelectorAll('input[name=point]').length;") >= 2)
            assert "Restorable from" in s.text("#restore-range")
            s.click(f"input[name=point][data-txid='{state['txid_before']}']")
            assert f"TXID {state['txid_before']}" in s.text("#restore-selected")
            s.shot("04-restore-points.png")

        def restore_copy():
            s.click("#restore-go")
            out = s.wait("the restore result", lambda: s.text("#restore-output-path"), timeout=60)
            assert "integrity_check: ok" in s.text("#restore-result")
            assert os.path.basename(out).startswith("app-restored-") and out.endswith(".db"), out
            assert os.path.dirname(out) == data, out
            rows = [r[0] for r in sqlite3.connect(out).execute("SELECT body FROM notes ORDER BY id")]
            assert rows == ["one", "two", "three"], rows
            s.shot("05-restored.png")

        def restore_in_place():
            s.click("#mode-inplace")
            s.click(f"input[name=point][data-txid='{state['txid_before']}']")
            s.click("#restore-go")
            s.wait("the confirmation", lambda: s.js("return !document.getElementById('confirm').hidden;"))
            s.shot("06-confirm-in-place.png")
            s.click("#confirm-yes")
            s.wait("the in-place result", lambda: "Restored in place" in (s.text("#restore-result") or ""), timeout=60)
            safety = s.text("#restore-result").split("kept at ")[-1].strip()
            assert os.path.basename(safety).startswith("app-before-restore-"), safety
            count = notes_count
            assert count(safety) == 5, count(safety)
            assert count(db) == 3, count(db)
            s.shot("06-restored-in-place-result.png")

        def undo_in_place():
            s.click("#restore-undo")
            s.wait("the undo confirmation", lambda: s.js("return !document.getElementById('confirm').hidden;"))
            s.click("#confirm-yes")
            s.wait("the undo result", lambda: "Undone" in (s.text("#restore-result") or ""), timeout=60)
            count = notes_count
            assert count(db) == 5, count(db)
            safety = s.text("#restore-result").split("kept at ")[-1].strip()
            assert os.path.basename(safety).startswith("app-before-restore-"), safety
            assert count(safety) == 3, count(safety)
            s.shot("06b-undone.png")

        def pause_and_resume():
            s.click("#nav-list")
            s.wait("the list", lambda: db_state(s, db))
            s.click("li.db .pause-btn")
            s.wait("Paused", lambda: (db_state(s, db) or {}).get("state") == "paused")
            assert s.text("li.db .state-text") == "Paused"
            assert s.text("li.db .pause-btn") == "Resume"
            s.shot("07-paused.png")
            s.click("li.db .pause-btn")
            s.wait("In sync again", lambda: (db_state(s, db) or {}).get("state") == "in_sync")

        def settings_screen():
            s.click("#nav-settings")
            s.wait("the settings", lambda: s.js("return document.getElementById('set-sync').value;") == "1000")
            s.shot("08-settings.png")

        def s3_test_connection_names_the_failure():
            s.click("#nav-add")
            s.click("#dest-s3")
            s.type("#s3-endpoint", "http://127.0.0.1:9")
            s.type("#s3-bucket", "backups")
            s.type("#s3-key", "AKIAEXAMPLE")
            s.type("#s3-secret", "example-secret")
            s.click("#add-test")
            err = s.wait("the S3 error", lambda: s.js("const e = document.getElementById('add-error'); return e.hidden ? null : [e.dataset.code, e.textContent];"))
            assert err[0] == "destination_unreachable", err
            assert "cannot reach the endpoint" in err[1] and "127.0.0.1:9" in err[1], err
            assert "example-secret" not in err[1], err
            s.shot("09-s3-unreachable.png")
            s.click("#dest-folder")

        def start_webdav(name, auth):
            """`rclone serve webdav` over a new folder on a free port (as crates/testkit
            starts it), stopped by PID at the end."""
            root = os.path.join(tmp, name)
            os.makedirs(root)
            port = free_port()
            args = ["rclone", "serve", "webdav", root, "--addr", f"127.0.0.1:{port}",
                    "--config", "/dev/null", "--log-level", "NOTICE"]
            if auth:
                args += ["--user", "tideline", "--pass", "dav-secret"]
            servers.append(subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=open(root + ".log", "w")))
            s.wait(f"rclone serve webdav on {port}", lambda: listening(port), timeout=20)
            return root, f"http://127.0.0.1:{port}"

        def back_to_folder():
            # By script: the add screen may be hidden by now (after a database was added).
            s.js("const r = document.getElementById('dest-folder'); r.checked = true;"
                 "r.dispatchEvent(new Event('change'));")

        def webdav_test_connection():
            _, url = start_webdav("dav-auth", auth=True)
            s.click("#nav-add")
            s.click("#dest-webdav")
            try:
                s.wait("the WebDAV fields", lambda: s.js("return !document.getElementById('dest-webdav-fields').hidden;"))
                s.type("#webdav-url", url)
                s.type("#webdav-path", "backups/app")
                s.type("#webdav-user", "tideline")
                s.type("#webdav-password", "not-the-dav-password")
                s.click("#add-test")
                err = s.wait("the WebDAV error", lambda: s.js("const e = document.getElementById('add-error'); return e.hidden ? null : [e.dataset.code, e.textContent];"))
                assert err[0] == "wrong_credentials", err
                assert "not-the-dav-password" not in err[1], err
                s.shot("09b-webdav-wrong-password.png")
                s.type("#webdav-password", "dav-secret")
                s.click("#add-test")
                ok = s.wait("the WebDAV test result", lambda: (lambda t: t if t and t.startswith("✓") else None)(s.text("#add-result")))
                assert url in ok and "backups/app" in ok, ok
                assert s.js("return document.getElementById('add-error').hidden;"), "the error is cleared"
                s.shot("09c-webdav-reachable.png")
            finally:
                s.type("#webdav-password", "")
                back_to_folder()

        def webdav_backup_reaches_in_sync():
            # A server without a login, so no password needs the keychain (none runs here).
            root, url = start_webdav("dav-open", auth=False)
            dav_db = os.path.join(data, "dav.db")
            c = sqlite3.connect(dav_db)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("CREATE TABLE t (x)")
            c.execute("INSERT INTO t VALUES (1)")
            c.commit()
            c.close()
            s.click("#nav-add")
            s.type("#add-path", dav_db)
            s.click("#dest-webdav")
            try:
                s.type("#webdav-url", url)
                s.type("#webdav-path", "backups/dav")
                s.type("#webdav-user", "")
                s.click("#add-submit")
                st = s.wait("dav.db in sync", lambda: (lambda v: v if v and v["state"] == "in_sync" and "TXID" in v["txid"] else None)(db_state(s, dav_db)), timeout=60)
            finally:
                back_to_folder()
            assert os.path.isdir(os.path.join(root, "backups", "dav", "ltx", "0")), os.listdir(root)
            dest = s.js("const li = [...document.querySelectorAll('li.db')].find(l => l.dataset.path === arguments[0]);"
                        "return li.querySelector('.destination').textContent;", dav_db)
            assert url in dest, dest
            s.shot("09d-webdav-in-sync.png")

        def gcs_backup_reaches_in_sync():
            s.wait(f"gcp-storage-emulator on {gcs_port}", lambda: listening(gcs_port), timeout=30)
            gs_db = os.path.join(data, "gs.db")
            c = sqlite3.connect(gs_db)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("CREATE TABLE t (x)")
            c.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
            c.commit()
            c.close()
            s.click("#nav-add")
            s.type("#add-path", gs_db)
            s.click("#dest-gs")
            try:
                s.wait("the Google Cloud Storage fields", lambda: s.js("return !document.getElementById('dest-gs-fields').hidden;"))
                assert s.js("return document.getElementById('dest-keychain').hidden;"), "no secrets, no keychain line"
                s.type("#gs-bucket", GCS_BUCKET)
                s.type("#gs-path", "backups/gs")
                s.click("#add-test")
                ok = s.wait("the GCS test result", lambda: (lambda t: t if t and t.startswith("✓") else None)(s.text("#add-result")))
                assert f"gs://{GCS_BUCKET}/backups/gs" in ok, ok
                s.shot("09f-gcs-reachable.png")
                s.click("#add-submit")
                s.wait("gs.db in sync", lambda: (lambda v: v if v and v["state"] == "in_sync" and "TXID" in v["txid"] else None)(db_state(s, gs_db)), timeout=60)
            finally:
                back_to_folder()
            # The emulator holds the L0 file Litestream's layout puts there.
            listing = json.loads(urllib.request.urlopen(
                f"http://127.0.0.1:{gcs_port}/storage/v1/b/{GCS_BUCKET}/o?prefix=backups/gs/ltx/0/", timeout=10).read())
            names = [o["name"] for o in listing.get("items", [])]
            assert names and all(n.endswith(".ltx") for n in names), listing
            s.shot("09g-gcs-in-sync.png")

        def abs_step_names_a_missing_field():
            s.click("#nav-add")
            s.click("#dest-abs")
            try:
                s.wait("the Azure fields", lambda: s.js("return !document.getElementById('dest-abs-fields').hidden;"))
                assert not s.js("return document.getElementById('dest-keychain').hidden;"), "the keychain line is shown"
                s.type("#abs-account", "acct")
                s.type("#abs-container", "")
                s.type("#abs-key", "a2V5")
                s.click("#add-test")
                err = s.wait("the Azure error", lambda: s.js("const e = document.getElementById('add-error'); return e.hidden ? null : [e.dataset.code, e.textContent];"))
                assert err[0] == "invalid_input" and "Enter the container name." in err[1], err
                assert "a2V5" not in err[1], err
                s.shot("09h-abs-missing-container.png")
            finally:
                s.type("#abs-key", "")
                back_to_folder()

        def sftp_step_names_a_bad_host_key():
            s.click("#nav-add")
            s.click("#dest-sftp")
            try:
                s.wait("the SFTP fields", lambda: s.js("return !document.getElementById('dest-sftp-fields').hidden;"))
                assert "ssh-keyscan HOST" in s.text("#sftp-host-key-hint")
                s.type("#sftp-host", "nas.example.com:2222")
                s.type("#sftp-user", "backup")
                s.type("#sftp-path", "backups/app")
                s.type("#sftp-key", "/home/me/.ssh/id_ed25519")
                s.type("#sftp-host-key", "nas.example.com ssh-ed25519")
                s.click("#add-test")
                err = s.wait("the host key error", lambda: s.js("const e = document.getElementById('add-error'); return e.hidden ? null : [e.dataset.code, e.textContent];"))
                assert err[0] == "invalid_input", err
                assert "not a public key line" in err[1] and "ssh-keyscan" in err[1], err
                s.shot("09e-sftp-bad-host-key.png")
            finally:
                s.type("#sftp-host-key", "")
                back_to_folder()

        def unwritable_destination():
            blocker = os.path.join(tmp, "blocker")
            open(blocker, "w").close()
            other = os.path.join(data, "other.db")
            sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
            s.click("#nav-add")
            s.type("#add-path", other)
            s.type("#add-folder", os.path.join(blocker, "backup"))
            s.click("#add-submit")
            err = s.wait("the error", lambda: s.js("const e = document.getElementById('add-error'); return e.hidden ? null : [e.dataset.code, e.textContent];"))
            assert err[0] == "destination_unavailable", err
            assert "blocker" in err[1], err
            s.shot("10-destination-error.png")

        def replication_error_in_the_list():
            # The backup folder disappears and a file takes its place: uploads fail.
            import shutil
            shutil.rmtree(backup)
            open(backup, "w").close()
            subprocess.run([sys.executable, "-c",
                            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
                            "c.execute(\"INSERT INTO notes (body) VALUES ('six')\"); c.commit()", db],
                           check=True, timeout=30)
            s.click("#nav-list")
            st = s.wait("the Error state", lambda: (lambda v: v if v and v["state"] == "error" else None)(db_state(s, db)))
            assert st["err"] and "backup" in st["err"], st
            assert s.text("li.db .state-text") == "Error"
            s.shot("11-replication-error.png")

        for name, fn in [("first run shows the empty state", first_run),
                         ("add a database with a folder destination", add_database),
                         ("its state reaches In sync", reaches_in_sync),
                         ("writes from another process are backed up", writes_from_another_process),
                         ("ten idle databases cost almost no CPU", ten_idle_databases_cost_almost_nothing),
                         ("restore points are listed", restore_points),
                         ("restore as a copy at the earlier point", restore_copy),
                         ("restore in place keeps a safety copy", restore_in_place),
                         ("undo puts the safety copy back", undo_in_place),
                         ("pause and resume from the list", pause_and_resume),
                         ("the settings screen", settings_screen),
                         ("S3 Test connection names what failed", s3_test_connection_names_the_failure),
                         ("WebDAV Test connection names a wrong password, then reaches the server", webdav_test_connection),
                         ("a database backed up to WebDAV reaches In sync", webdav_backup_reaches_in_sync),
                         ("the SFTP step names a host key line that is not one", sftp_step_names_a_bad_host_key),
                         ("a database backed up to Google Cloud Storage reaches In sync", gcs_backup_reaches_in_sync),
                         ("the Azure Blob step names a missing container", abs_step_names_a_missing_field),
                         ("an unwritable destination shows a clear error", unwritable_destination),
                         ("a failing destination shows Error and why in the list", replication_error_in_the_list)]:
            if not check(name, fn):
                try:
                    s.shot(f"failed-{name.replace(' ', '-')}.png")
                except Exception:  # noqa: BLE001
                    pass
    finally:
        for server in servers:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        if sid:
            try:
                call("DELETE", f"/session/{sid}", timeout=30)
            except Exception as e:  # noqa: BLE001
                print(f"closing the session: {e}")
        driver.terminate()
        try:
            driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver.kill()
        log.close()
    print(f"e2e: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
