"""Two runs promoting at once, in separate processes, on both stores: exactly one moves the champion.

The alias move is a compare-and-swap in the store (If-Match on MinIO, a locked replace on the
local directory). Half the rounds force the worst interleaving (both racers have read the
champion before either writes); the other half race with natural timing.
"""
from __future__ import annotations

import multiprocessing
import queue as queue_module
import threading

import pytest

from steps.hashing import sha256_bytes
from steps.lifecycle.model_registry import alias_history, load_manifest, read_alias
from steps.store import ObjectChanged, StoreSettings, open_store
from tests.minio_server import unique_bucket_prefix

MODEL = "digits-digits-cnn"
RACERS = 2
FORCED_ROUNDS = 5
NATURAL_ROUNDS = 5
BARRIER_TIMEOUT_S = 120.0
RACE_DEADLINE_S = 600.0


@pytest.fixture(params=["local", pytest.param("minio", marks=pytest.mark.minio)])
def store_settings(request, tmp_path) -> StoreSettings:
    if request.param == "local":
        return StoreSettings(backend="local", root=str(tmp_path / "store"))
    server = request.getfixturevalue("minio_server")
    return server.settings(bucket_prefix=unique_bucket_prefix())


def test_compare_and_swap_writes_only_over_what_the_caller_read(store_settings):
    store = open_store(store_settings)
    key = "models/m/aliases/champion.json"
    store.compare_and_swap(key, b"one", expected_sha256=None)
    with pytest.raises(ObjectChanged, match="changed since it was read"):
        store.compare_and_swap(key, b"two", expected_sha256=None)  # it exists now
    store.compare_and_swap(key, b"two", expected_sha256=sha256_bytes(b"one"))
    with pytest.raises(ObjectChanged, match="changed since it was read"):
        store.compare_and_swap(key, b"three", expected_sha256=sha256_bytes(b"one"))  # stale read
    assert store.get_bytes(key) == b"two"


def _race(settings: StoreSettings, index: int, barrier, results) -> None:
    """One racer: each round, evaluate against the current champion, wait for the other, register."""
    from steps.lifecycle import register as register_module
    from steps.lifecycle.evaluate import evaluate_challenger
    from steps.lifecycle.register import register_model
    from tests.pipeline_fixtures import make_plan, snapshot_of
    from tests.registration_fixtures import trainer_outputs

    store = open_store(settings)
    snapshot = snapshot_of(store)
    read_alias_entry = register_module.read_alias_entry

    def read_then_wait(*args, **kwargs):
        entry = read_alias_entry(*args, **kwargs)
        barrier.wait(BARRIER_TIMEOUT_S)  # the other racer has read the same champion too
        return entry

    for round_no in range(FORCED_ROUNDS + NATURAL_ROUNDS):
        forced = round_no < FORCED_ROUNDS
        plan = make_plan(f"race-r{round_no}-p{index}")
        # Every round's challengers beat every earlier one, so each round has a legitimate winner.
        result = trainer_outputs(store, plan, f"r{round_no}-p{index}".encode(), macro_f1=0.5 + 0.02 * round_no + 0.001 * index)
        barrier.wait(BARRIER_TIMEOUT_S)  # both start the round against the same champion
        record = evaluate_challenger(store, settings, plan, result, executor=None)  # type: ignore[arg-type]
        barrier.wait(BARRIER_TIMEOUT_S)  # neither registers before both were evaluated
        register_module.read_alias_entry = read_then_wait if forced else read_alias_entry
        registered = register_model(store, plan, snapshot, f"runs/{plan.run_key}/validation.json", 3, result, record)
        results.put((round_no, index, record.champion_version, registered.version, registered.champion,
                     registered.champion_reason))


def test_racing_promotions_have_exactly_one_winner_and_the_loser_says_why(store_settings):
    ctx = multiprocessing.get_context("spawn")  # no inherited client connections or threads
    barrier, results = ctx.Barrier(RACERS), ctx.Queue()
    racers = [ctx.Process(target=_race, args=(store_settings, i, barrier, results)) for i in range(RACERS)]
    for p in racers:
        p.start()
    rounds: dict[int, list[tuple]] = {}
    try:
        for _ in range(RACERS * (FORCED_ROUNDS + NATURAL_ROUNDS)):
            outcome = results.get(timeout=RACE_DEADLINE_S)
            rounds.setdefault(outcome[0], []).append(outcome)
    except queue_module.Empty:
        pytest.fail(f"racers reported {sum(map(len, rounds.values()))} outcomes before {RACE_DEADLINE_S}s ran out; "
                    f"exit codes {[p.exitcode for p in racers]}")
    finally:
        for p in racers:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in racers] == [0] * RACERS

    store = open_store(store_settings)
    for round_no, outcomes in sorted(rounds.items()):
        winners = [o for o in outcomes if o[4]]
        losers = [o for o in outcomes if not o[4]]
        assert len(winners) == 1, f"round {round_no}: {outcomes}"
        assert "champion" in losers[0][5] and f"v{winners[0][3]}" in losers[0][5], losers[0][5]
    # Every move of the alias went to a version whose evaluation beat the champion it replaced.
    history = alias_history(store, MODEL)
    assert len(history) == FORCED_ROUNDS + NATURAL_ROUNDS
    previous = None
    for move in history:
        evaluation = load_manifest(store, MODEL, move.version).evaluation
        assert evaluation.promote and evaluation.champion_version == previous, (move, evaluation)
        previous = move.version
    assert read_alias(store, MODEL).version == previous


@pytest.mark.minio
def test_minio_refuses_a_swap_when_another_writer_lands_between_its_read_and_its_write(minio_store, monkeypatch):
    key = "models/m/aliases/champion.json"
    minio_store.put_bytes(key, b"one")
    client = minio_store._client
    real_put = client._put_object

    def another_writer_first(*args, **kwargs):
        monkeypatch.setattr(client, "_put_object", real_put)
        minio_store.put_bytes(key, b"another")  # lands after the swap's stat, before its conditional PUT
        return real_put(*args, **kwargs)

    monkeypatch.setattr(client, "_put_object", another_writer_first)
    with pytest.raises(ObjectChanged, match="another writer"):
        minio_store.compare_and_swap(key, b"two", expected_sha256=sha256_bytes(b"one"))
    assert minio_store.get_bytes(key) == b"another"


def test_local_swaps_of_one_key_are_serialised_by_its_lock(local_store, monkeypatch):
    key = "models/m/aliases/champion.json"
    local_store.compare_and_swap(key, b"one", expected_sha256=None)
    real_publish = local_store._publish
    competitor: dict[str, object] = {}

    def compete() -> None:
        try:
            competitor["result"] = local_store.compare_and_swap(key, b"competitor", expected_sha256=sha256_bytes(b"one"))
        except ObjectChanged as exc:
            competitor["result"] = exc

    def publish_while_another_swap_tries(*args, **kwargs):
        monkeypatch.setattr(local_store, "_publish", real_publish)
        thread = threading.Thread(target=compete)
        thread.start()
        thread.join(timeout=2.0)  # with the lock held, the competitor cannot get past its own read
        competitor["thread"] = thread
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(local_store, "_publish", publish_while_another_swap_tries)
    local_store.compare_and_swap(key, b"two", expected_sha256=sha256_bytes(b"one"))
    competitor["thread"].join(timeout=60)  # type: ignore[attr-defined]
    assert isinstance(competitor["result"], ObjectChanged)
    assert local_store.get_bytes(key) == b"two"
