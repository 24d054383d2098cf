"""Several clients on one model at once, over real HTTP against a real server.

Client threads predict (GET and POST), append and retrain the same model concurrently. Every
append must land (the final table holds every appended row exactly once), every prediction must
come from a complete model (one valid label per row), and no request may fail except with a
documented 409 (the model busy). Another model must keep answering meanwhile.

No clock decides anything here. What must overlap is made to: this process (another process
than the server) holds the model's lock, so the writes it starts are provably still in flight
while it looks (the appends all at once; a retrain at its commit, where ``?_job`` shows it).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from conftest import GUIDE_OPTIONS, GUIDE_PASSENGER
from rest_helpers import TITANIC, jupyter_server

from mlwidget import MLModel
from mlwidget.store import Store

APPENDERS, BATCHES = 3, 6
RETRAINERS, RETRAINS = 2, 3
# a retrain refused because an append changed the data under it is tried again: at most one
# such refusal per append, and one wait per retrain of the other retrainer
MOST_RETRAINS = RETRAINS + 2 * APPENDERS * BATCHES + 2 * RETRAINS
PREDICTORS, ROUNDS = 3, 2  # each predictor goes on until the writers end, and ROUNDS at least
# the titanic rows, repeated: a retrain takes a moment (what must overlap is made to, by the
# lock, not by the size)
BASE_ROWS = 6000
PASSENGER = {k: str(v) for k, v in GUIDE_PASSENGER.items()}
TITANIC_DF = pd.read_csv(TITANIC)
FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]


def wait_until(check: Callable[[], bool], within: float = 120.0, what: str = "it") -> None:
    """Wait for ``check()`` to hold (a bound, not a measurement)."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {within:g} s"
        time.sleep(0.05)


@contextlib.contextmanager
def holding_the_lock(store: Path, name: str) -> Iterator[None]:
    """The model's lock, held by this process: until it is released, no write to the model
    can finish on the server (appends wait for it on the server's event loop, a retrain's
    commit in its job's driver, up to ``tasks.COMMIT_WAIT``)."""
    with Store(store).lock(name, timeout=60):
        yield


def base_table() -> pd.DataFrame:
    reps = BASE_ROWS // len(TITANIC_DF) + 1
    table = pd.concat([TITANIC_DF] * reps, ignore_index=True).head(BASE_ROWS)
    table["PassengerId"] = range(1, len(table) + 1)
    return table


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("concurrency")
    store = tmp / "store"
    options = {**GUIDE_OPTIONS, "class": "RandomForestClassifier"}
    MLModel("shared", data=base_table(), store=store, n_estimators=20, random_state=0, **options)
    MLModel("other", data=str(TITANIC), store=store, **GUIDE_OPTIONS)
    with jupyter_server(tmp, store) as (url, token):
        yield {"url": url, "token": token, "store": store}


class Clients:
    """What the client threads saw."""

    def __init__(self, server: dict[str, Any]) -> None:
        self.url = f"{server['url']}/mlhandler/"
        self.headers = {"Authorization": f"token {server['token']}"}
        self.lock = threading.Lock()
        self.failures: list[str] = []
        self.conflicts: Counter[str] = Counter()
        self.appended_ids: list[int] = []
        self.landed: Counter[int] = Counter()  # appends answered 200, by appender
        self.predictions = 0
        self.retrains = 0
        self.next_id = 1_000_000
        self.writing = self.most_writing = 0

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update(self.headers)
        return session

    def check(self, what: str, reply: requests.Response) -> bool:
        """True for a 200; records anything else but a JSON 409 as a failure."""
        if reply.status_code == 200:
            return True
        with self.lock:
            if reply.status_code == 409 and "error" in reply.json():
                self.conflicts[what] += 1
            else:
                self.failures.append(f"{what}: {reply.status_code} {reply.text[:300]}")
        return False

    def fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)

    def ids(self, n: int) -> list[int]:
        with self.lock:
            start, self.next_id = self.next_id, self.next_id + n
        return list(range(start, start + n))


class Writing:
    """Counts the writes in flight, to show that they overlapped."""

    def __init__(self, c: Clients) -> None:
        self.c = c

    def __enter__(self) -> None:
        with self.c.lock:
            self.c.writing += 1
            self.c.most_writing = max(self.c.most_writing, self.c.writing)

    def __exit__(self, *exc: Any) -> None:
        with self.c.lock:
            self.c.writing -= 1


def appender(c: Clients, seed: int) -> None:
    session = c.session()
    for batch in range(BATCHES):
        n = 1 + (seed * 7 + batch * 3) % 9
        rows = TITANIC_DF.sample(n, random_state=seed * 100 + batch).copy()
        rows["PassengerId"] = c.ids(n)
        with Writing(c):
            reply = session.post(
                f"{c.url}shared",
                params={"_action": "append"},
                data=rows.to_json(orient="records"),
                headers={"Content-Type": "application/json"},
                timeout=300,
            )
        if c.check("append", reply):
            if reply.json().get("appended") != n:
                c.fail(f"append of {n} rows answered {reply.json()}")
            with c.lock:
                c.appended_ids.extend(rows["PassengerId"])
                c.landed[seed] += 1


def ended(session: requests.Session, url: str, job: str) -> Callable[[], bool]:
    """Whether the job has ended, as ``GET ?_job`` says."""

    def check() -> bool:
        state = session.get(url, params={"_job": job}, timeout=60).json()
        return state["status"] not in ("queued", "running")

    return check


def retrainer(c: Clients) -> None:
    """RETRAINS retrains, and more until one of them is stored. A 409 naming a running job
    (the other retrainer's) is waited out, as a client should: GET ?_job until it ends."""
    session = c.session()
    done = 0
    for attempt in range(MOST_RETRAINS):
        if attempt >= RETRAINS and done:
            return
        with Writing(c):
            reply = session.post(f"{c.url}shared", params={"_action": "retrain"}, timeout=300)
        if c.check("retrain", reply):
            result = reply.json()
            if result.get("model") != "RandomForestClassifier" or not result.get("rows"):
                c.fail(f"retrain answered {result}")
            done += 1
            with c.lock:
                c.retrains += 1
        elif reply.status_code == 409 and reply.json().get("job"):
            wait_until(ended(session, f"{c.url}shared", reply.json()["job"]), within=300)
    c.fail(f"no retrain of {MOST_RETRAINS} was stored")


def predictor(c: Clients, stop: threading.Event, seed: int) -> None:
    session = c.session()
    rows = TITANIC_DF[FEATURES].sample(25, random_state=seed)
    body = rows.to_json(orient="records")
    rounds = 0
    while not stop.is_set() or rounds < ROUNDS:
        rounds += 1
        reply = session.get(f"{c.url}shared", params=PASSENGER, timeout=300)
        if c.check("GET predict", reply) and reply.json() not in ([0], [1]):
            c.fail(f"GET predict answered {reply.text[:200]}")
        reply = session.post(
            f"{c.url}shared",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=300,
        )
        if c.check("POST predict", reply):
            labels = reply.json()
            if len(labels) != len(rows) or not set(labels) <= {0, 1}:
                c.fail(f"POST predict answered {reply.text[:200]}")
        reply = session.get(f"{c.url}other", params=PASSENGER, timeout=300)
        with c.lock:
            c.predictions += 2
        if c.check("other model", reply) and reply.json() != [0]:
            c.fail(f"the other model answered {reply.text[:200]}")


def test_predict_append_retrain_at_once(server):
    c = Clients(server)
    session = c.session()
    before = session.get(f"{c.url}shared", params={"_model": ""}, timeout=60).json()
    assert before["rows"] == BASE_ROWS

    stop = threading.Event()
    readers = [
        threading.Thread(target=predictor, args=(c, stop, i), daemon=True)
        for i in range(PREDICTORS)
    ]
    writers = [
        threading.Thread(target=appender, args=(c, i + 1), daemon=True) for i in range(APPENDERS)
    ] + [threading.Thread(target=retrainer, args=(c,), daemon=True) for _ in range(RETRAINERS)]
    appenders, retrainers = writers[:APPENDERS], writers[APPENDERS:]
    with holding_the_lock(server["store"], "shared"):
        for thread in appenders:
            thread.start()
        # every appender's first batch is in flight at once: none can land while the lock is held
        wait_until(lambda: c.writing == APPENDERS, what="every appender sending its first batch")
        assert not c.landed and not c.conflicts and not c.failures
    # released, the writes held at once all land (no retrain runs yet to refuse one)
    wait_until(
        lambda: len(c.landed) == APPENDERS or bool(c.conflicts or c.failures),
        what="the held appends landing",
    )
    assert not c.conflicts and not c.failures, (c.conflicts, c.failures[:3])
    for thread in readers + retrainers:
        thread.start()
    for thread in writers:
        thread.join(timeout=240)
    stop.set()
    for thread in readers:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in readers + writers), "a client thread hung"

    assert not c.failures, c.failures[:10]
    assert c.predictions >= PREDICTORS * ROUNDS * 2, c.predictions
    assert c.retrains >= RETRAINERS, (c.retrains, c.conflicts)  # each retrainer stored one
    assert c.most_writing >= APPENDERS  # the writes did overlap
    # every append landed, exactly once
    after = session.get(f"{c.url}shared", params={"_model": ""}, timeout=60).json()
    assert after["rows"] == BASE_ROWS + len(c.appended_ids)
    data = pd.DataFrame(session.get(f"{c.url}shared", params={"_cache": ""}, timeout=60).json())
    ids = Counter(data["PassengerId"])
    assert sorted(ids) == list(range(1, BASE_ROWS + 1)) + sorted(c.appended_ids)
    assert max(ids.values()) == 1
    sent = sum(1 + (s * 7 + b * 3) % 9 for s in range(1, APPENDERS + 1) for b in range(BATCHES))
    assert len(c.appended_ids) == sent or c.conflicts["append"]
    # the model that serves is complete and the store is consistent for a fresh reader
    m = MLModel.open("shared", store=server["store"])
    assert len(m.data()) == after["rows"]
    assert m.predict(GUIDE_PASSENGER) in ([0], [1])
    print(
        f"predictions={c.predictions} retrains={c.retrains} appended={len(c.appended_ids)} "
        f"conflicts={dict(c.conflicts)} writes in flight at once={c.most_writing}"
    )


def test_the_other_model_answers_while_a_retrain_is_held(server):
    """A retrain of ``shared`` is held at its commit (this process holds the model's lock):
    while ``?_job`` shows it running at ``save`` before and after, the other model and the
    busy model itself answer. Released, the retrain answers and is stored. Were the retrain (or
    the wait for it) on the server's event loop, nothing would answer while it is held."""
    c = Clients(server)
    session = c.session()
    version = session.get(f"{c.url}shared", params={"_model": ""}, timeout=60).json()
    with ThreadPoolExecutor(1) as pool, holding_the_lock(server["store"], "shared"):
        retrain = pool.submit(
            c.session().post, f"{c.url}shared", params={"_action": "retrain"}, timeout=300
        )
        held: dict[str, Any] = {}

        def at_commit() -> bool:
            jobs = session.get(f"{c.url}shared", params={"_jobs": ""}, timeout=60).json()
            running = [j for j in jobs if j["status"] == "running" and j["action"] == "retrain"]
            held.update(running[0] if running else {})
            return bool(running) and running[0]["stage"] == "save"

        wait_until(at_commit, what="the retrain reaching its commit")
        other = session.get(f"{c.url}other", params=PASSENGER, timeout=60)
        busy = session.get(f"{c.url}shared", params=PASSENGER, timeout=60)
        still = session.get(f"{c.url}shared", params={"_job": held["job"]}, timeout=60).json()
        assert (still["status"], still["stage"]) == ("running", "save"), still
        assert not retrain.done()
        assert other.status_code == 200 and other.json() == [0], other.text
        assert busy.status_code == 200 and busy.json() in ([0], [1]), busy.text
    reply = retrain.result()
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == "RandomForestClassifier"
    after = session.get(f"{c.url}shared", params={"_model": ""}, timeout=60).json()
    # a new version serves (trained_at has whole seconds: two fits can share one)
    assert after["version"] > version["version"], (version["version"], after["version"])
