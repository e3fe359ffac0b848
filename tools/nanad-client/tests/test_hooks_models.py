"""Client-side hooks, validators and Pydantic-style models, run in the calling process."""

from __future__ import annotations

import asyncio
import threading

import pytest

from nanad_client import AsyncNanaSQLite, CheckHook, NanaSQLite, NanaSQLiteTransactionError, NanaSQLiteValidationError


class Recorder:
    """A hook implementing all five methods; logs every call."""

    def __init__(self):
        self.log = []

    def before_write(self, db, key, value):
        self.log.append(("before_write", key, value))
        if isinstance(value, str):
            return value.upper()
        return value

    def after_read(self, db, key, value):
        self.log.append(("after_read", key, value))
        if isinstance(value, dict):
            return {**value, "read": True}
        return value

    def before_delete(self, db, key):
        self.log.append(("before_delete", key))
        if key.startswith("keep"):
            raise NanaSQLiteValidationError("protected key")

    def on_write_success(self, db, key, value, old_value):
        self.log.append(("on_write_success", key, value, old_value))

    def on_delete_success(self, db, key, old_value):
        self.log.append(("on_delete_success", key, old_value))


def _hook_script(db, hook):
    """The same calls against either implementation; returns what the caller saw."""
    seen = []
    db["a"] = "text"
    db["a"] = "again"
    seen.append(db["a"])
    db["d"] = {"x": 1}
    seen.append(db["d"])
    seen.append(db.get("missing", "dflt"))
    seen.append(db.get("d"))
    seen.append(db.batch_get(["d", "a", "missing"]))
    del db["a"]
    with pytest.raises(KeyError):
        del db["a"]
    db["keep1"] = 1
    with pytest.raises(NanaSQLiteValidationError if db.__class__ is NanaSQLite else Exception):
        del db["keep1"]
    seen.append("keep1" in db)
    seen.append(db.pop("d"))
    seen.append(db.pop("gone", None))
    seen.append(db.setdefault("s", "low"))
    seen.append(db.setdefault("s", "other"))
    db.batch_update({"b1": "x", "b2": 2})
    seen.append(db.batch_update_partial({"p1": "y"}))
    db.batch_delete(["b1", "missing"])
    seen.append(sorted(db.keys()))
    return seen


def test_hooks_are_called_as_nanasqlite_calls_them(impl):
    hook = Recorder()
    db = impl("hooks.db", hooks=[hook])
    seen = _hook_script(db, hook)
    assert seen == [
        "AGAIN",
        {"x": 1, "read": True},
        "dflt",
        {"x": 1, "read": True},
        {"d": {"x": 1, "read": True}, "a": "AGAIN"},
        True,
        {"x": 1, "read": True},
        None,
        "LOW",
        "LOW",
        {},
        ["b2", "keep1", "p1", "s"],
    ]
    # The same hook calls, in the same order, on both implementations.
    assert hook.log == [
        ("before_write", "a", "text"),
        ("on_write_success", "a", "TEXT", None),
        ("before_write", "a", "again"),
        ("on_write_success", "a", "AGAIN", "TEXT"),
        ("after_read", "a", "AGAIN"),
        ("before_write", "d", {"x": 1}),
        ("on_write_success", "d", {"x": 1}, None),
        ("after_read", "d", {"x": 1}),
        ("after_read", "d", {"x": 1}),
        ("after_read", "d", {"x": 1}),
        ("after_read", "a", "AGAIN"),
        ("before_delete", "a"),
        ("on_delete_success", "a", "AGAIN"),
        ("before_write", "keep1", 1),
        ("on_write_success", "keep1", 1, None),
        ("before_delete", "keep1"),
        ("before_delete", "d"),
        ("on_delete_success", "d", {"x": 1}),
        ("after_read", "d", {"x": 1}),
        ("before_write", "s", "low"),
        ("on_write_success", "s", "LOW", None),
        ("after_read", "s", "LOW"),
        ("after_read", "s", "LOW"),
        ("before_write", "b1", "x"),
        ("before_write", "b2", 2),
        ("on_write_success", "b1", "X", None),
        ("on_write_success", "b2", 2, None),
        ("before_write", "p1", "y"),
        ("on_write_success", "p1", "Y", None),
        ("before_delete", "b1"),
        ("on_delete_success", "b1", "X"),
    ]


def test_validator_and_check_hook(nanad, dbfile):
    def positive(value):
        if not isinstance(value, int) or value <= 0:
            raise ValueError("must be a positive int")
        return value

    db = NanaSQLite(dbfile, socket=nanad.socket, validator=positive)
    try:
        db["ok"] = 3
        with pytest.raises(NanaSQLiteValidationError, match="Schema validation failed"):
            db["bad"] = -1
        assert "bad" not in db
        assert db.batch_update_partial({"good": 1, "neg": -5}).keys() == {"neg"}
        with pytest.raises(NanaSQLiteValidationError):
            db.update({"x": 1, "y": "no"})
        assert "x" not in db  # refused before anything was sent
        # children inherit the validator; validator=None disables it; hooks=[] keeps the validator
        assert pytest.raises(NanaSQLiteValidationError, db.table("kids").__setitem__, "k", 0)
        free = db.table("free", validator=None)
        free["k"] = "anything"
        checked = db.table("checked", hooks=[CheckHook(lambda k, v: k != "forbidden")])
        with pytest.raises(NanaSQLiteValidationError):
            checked["forbidden"] = 1
        with pytest.raises(NanaSQLiteValidationError):
            checked["other"] = -1  # the validator still runs after the given hooks
        checked["other"] = 2
    finally:
        db.close()

    coercing = NanaSQLite(dbfile, socket=nanad.socket, validator=int, coerce=True)
    try:
        coercing["n"] = "42"
        assert coercing["n"] == 42
    finally:
        coercing.close()


def test_nanasqlite_hook_classes_work_with_the_drop_in(nanad, dbfile):
    nanasqlite = __import__("nanasqlite")
    db = NanaSQLite(dbfile, socket=nanad.socket)
    try:
        db.add_hook(nanasqlite.CheckHook(lambda k, v: isinstance(v, dict), error_msg="dicts only"))
        db.add_hook(nanasqlite.UniqueHook("email"))
        db["u1"] = {"email": "a@x"}
        with pytest.raises(nanasqlite.NanaSQLiteValidationError):  # nanasqlite's own class
            db["u2"] = {"email": "a@x"}
        with pytest.raises(nanasqlite.NanaSQLiteValidationError, match="dicts only"):
            db["u3"] = "not a dict"
        db["u2"] = {"email": "b@x"}
        assert sorted(db.keys()) == ["u1", "u2"]
    finally:
        db.close()


def test_increment_and_patch_with_hooks_stay_atomic(nanad, dbfile):
    class Cap:
        def before_write(self, db, key, value):
            if isinstance(value, int) and value > 3:
                raise NanaSQLiteValidationError("too big")
            if isinstance(value, dict):
                return {**value, "hooked": True}
            return value

    db = NanaSQLite(dbfile, socket=nanad.socket, hooks=[Cap()])
    try:
        assert db.increment("n", default=0) == 1
        assert db.increment("n", 2) == 3
        with pytest.raises(NanaSQLiteValidationError):
            db.increment("n")
        assert db["n"] == 3  # the refused increment was rolled back
        assert db.in_transaction() is False
        assert db.patch("p", {"a": 1}, create=True) == {"a": 1, "hooked": True}
        assert db["p"] == {"a": 1, "hooked": True}
        with db.transaction():  # inside the caller's transaction: no nested begin
            assert db.increment("m", default=0) == 1
        assert db["m"] == 1
    finally:
        db.close()


class FakeModel:
    """Quacks like a Pydantic v2 model (model_dump, keyword constructor)."""

    def __init__(self, name, age):
        self.name, self.age = name, age

    def model_dump(self):
        return {"name": self.name, "age": self.age}

    def __eq__(self, other):
        return isinstance(other, FakeModel) and (self.name, self.age) == (other.name, other.age)


def test_set_model_and_get_model(db):
    db.set_model("user", FakeModel("Nana", 20))
    assert db["user"] == {
        "__pydantic_model__": f"{FakeModel.__module__}.FakeModel",
        "__pydantic_data__": {"name": "Nana", "age": 20},
    }
    assert db.get_model("user", FakeModel) == FakeModel("Nana", 20)
    with pytest.raises(ValueError, match="model_class must be provided"):
        db.get_model("user")
    db["plain"] = {"name": "Plain", "age": 1}
    assert db.get_model("plain", FakeModel) == FakeModel("Plain", 1)
    with pytest.raises(KeyError):
        db.get_model("missing", FakeModel)
    with pytest.raises(TypeError, match="Failed to serialize Pydantic model"):
        db.set_model("x", object())


def test_pydantic_models_if_installed(db):
    pydantic = __import__("pydantic")

    class User(pydantic.BaseModel):
        name: str
        age: int

    db.set_model("u", User(name="Nana", age=20))
    assert db["u"]["__pydantic_model__"].endswith("User")
    assert db.get_model("u", User) == User(name="Nana", age=20)


def test_async_hooks_and_models(nanad, dbfile):
    async def main():
        hook = Recorder()
        async with AsyncNanaSQLite(dbfile, socket=nanad.socket) as db:
            await db.add_hook(hook)  # NanaSQLite awaits add_hook; plain calls work too
            db.add_hook(CheckHook(lambda k, v: v != "FORBIDDEN"))  # runs after Recorder upper-cased it
            await db.aset("k", "v")
            assert await db.aget("k") == "V"
            with pytest.raises(NanaSQLiteValidationError):
                await db.aset("k2", "forbidden")
            assert await db.aget("k2") is None
            await db.aset_model("m", FakeModel("A", 1))
            assert await db.aget_model("m", FakeModel) == FakeModel("A", 1)
            child = await db.table("sub")
            await child.aset("c", "lower")
            assert await child.aget("c") == "LOWER"  # children inherit the hooks
            assert ("on_write_success", "k", "V", None) in hook.log

    asyncio.run(main())


def test_async_hooks_run_off_the_loop_and_an_admitted_call_outlives_its_caller(nanad, dbfile):
    """As in NanaSQLite: hooks run on worker threads, so a blocking before_write leaves the event
    loop free; once admitted, a call is the instance's: cancelling its caller neither stops nor
    loses it, and close() waits for it (close() cancelled, or called twice, still closes once)."""
    entered, release = threading.Event(), threading.Event()
    hook_threads = []

    class Blocking:
        def before_write(self, db, key, value):
            hook_threads.append(threading.get_ident())
            entered.set()
            assert release.wait(10), "never released"
            return value

    async def main():
        db = AsyncNanaSQLite(dbfile, socket=nanad.socket, max_pending_operations=2, hooks=[Blocking()])
        write = asyncio.create_task(db.aset("accepted", 42))
        assert await asyncio.to_thread(entered.wait, 5)  # the loop ran this while the hook blocked
        assert hook_threads[0] != threading.get_ident()
        write.cancel()
        with pytest.raises(asyncio.CancelledError):
            await write
        closer = asyncio.create_task(db.close())
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(closer), 0.2)  # waiting for the write
        impatient = asyncio.create_task(db.close())
        await asyncio.sleep(0)
        impatient.cancel()
        release.set()
        await db.close()
        await closer
        assert db.closed

    asyncio.run(main())
    with NanaSQLite(dbfile, socket=nanad.socket) as check:
        assert check["accepted"] == 42


def test_async_hooks_of_every_kind_run_on_worker_threads(nanad, dbfile):
    """Only the hook calls leave the event loop (an operation hands them over); every kind
    of hook still runs on a worker thread, never on the loop's."""
    seen = {}

    class Where:
        def before_write(self, db, key, value):
            seen.setdefault("before_write", threading.get_ident())
            return value

        def after_read(self, db, key, value):
            seen.setdefault("after_read", threading.get_ident())
            return value

        def before_delete(self, db, key):
            seen.setdefault("before_delete", threading.get_ident())

        def on_write_success(self, db, key, value, old):
            seen.setdefault("on_write_success", threading.get_ident())

        def on_delete_success(self, db, key, old):
            seen.setdefault("on_delete_success", threading.get_ident())

    async def main():
        async with AsyncNanaSQLite(dbfile, socket=nanad.socket, hooks=[Where()]) as db:
            loop_thread = threading.get_ident()
            await db.aset("k", 1)
            assert await db.aget("k") == 1
            assert await db.abatch_get(["k"]) == {"k": 1}
            await db.adelete("k")
            assert set(seen) == {"before_write", "after_read", "before_delete", "on_write_success", "on_delete_success"}
            assert loop_thread not in seen.values()

    asyncio.run(main())


def test_async_close_refused_in_a_transaction_can_be_called_again(nanad, dbfile):
    async def main():
        db = AsyncNanaSQLite(dbfile, socket=nanad.socket, hooks=[Recorder()])
        await db.begin_transaction()
        with pytest.raises(NanaSQLiteTransactionError):
            await db.close()
        await db.rollback()
        await db.aset("after", "x")
        await db.close()
        assert db.closed and db.sync_db is None

    asyncio.run(main())
    with NanaSQLite(dbfile, socket=nanad.socket) as check:
        assert check["after"] == "X"


def test_pydantic_and_validkit_hooks_behave_as_nanasqlites(impl):
    """The drop-in's own PydanticHook and ValidkitHook, side by side with NanaSQLite's."""
    pydantic = __import__("pydantic")
    module = impl.module

    class User(pydantic.BaseModel):
        name: str
        age: int

    db = impl("models.db", hooks=[module.PydanticHook(User, key_pattern=r"^user:")])
    db["user:1"] = User(name="Nana", age=20)
    db["user:2"] = {"name": "Mika", "age": "21"}  # validated (and coerced) into the model
    db["other"] = {"free": "form"}  # not the pattern's: stored as given
    seen = [db["user:1"], db["user:2"], db["other"]]
    with pytest.raises(module.NanaSQLiteValidationError, match="Model validation failed"):
        db["user:3"] = {"name": "no age"}
    seen.append("user:3" in db)
    assert seen == [User(name="Nana", age=20), User(name="Mika", age=21), {"free": "form"}, False]

    if not module.HAS_VALIDKIT:
        with pytest.raises(ImportError):
            module.ValidkitHook({"name": str})
        return
    validkit = __import__("validkit")
    schema = {"name": validkit.v.str(), "age": validkit.v.int()}
    checked = impl("validkit.db", hooks=[module.ValidkitHook(schema)])
    checked["ok"] = {"name": "Nana", "age": 20}
    with pytest.raises(module.NanaSQLiteValidationError, match="Schema validation failed"):
        checked["bad"] = {"name": "Nana", "age": "twenty"}
    assert checked["ok"] == {"name": "Nana", "age": 20} and "bad" not in checked


@pytest.mark.parametrize("use_index", [False, True])
def test_unique_hook_holds_for_threads_sharing_an_instance(impl, use_index):
    """NanaSQLite's SEC-05 fix: threads writing the same value through one instance (and its
    children) get one success; the hook's check and the write it allows are one step."""
    module = impl.module
    db = impl("unique-threads.db")
    db.add_hook(module.UniqueHook("email", use_index=use_index))
    start = threading.Barrier(6)
    outcomes = []

    def write(i):
        start.wait()
        try:
            db[f"user{i}"] = {"email": "same"}
            outcomes.append("stored")
        except module.NanaSQLiteValidationError:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 5 + ["stored"]
    assert len(db) == 1


def test_async_unique_hook_reads_a_sync_view_and_holds_for_concurrent_calls(nanad, dbfile):
    """In AsyncNanaSQLite, hooks get a sync instance as ``db`` (as NanaSQLite's get its inner
    one), so UniqueHook's scan of ``db.items()`` works; concurrent calls get one success."""
    from nanad_client import UniqueHook

    async def main():
        async with AsyncNanaSQLite(dbfile, socket=nanad.socket, hooks=[UniqueHook("email")]) as db:
            results = await asyncio.gather(*(db.aset(f"u{i}", {"email": "same"}) for i in range(6)),
                                           return_exceptions=True)
            assert sum(r is None for r in results) == 1
            assert all(isinstance(r, NanaSQLiteValidationError) for r in results if r is not None)
            assert len(await db.ato_dict()) == 1

    asyncio.run(main())


@pytest.mark.parametrize("use_index", [False, True])
def test_unique_and_foreign_key_hooks_behave_as_nanasqlites(impl, use_index):
    """The drop-in's own UniqueHook and ForeignKeyHook, side by side with NanaSQLite's: single
    writes, batches, deletes freeing a value, and a rollback that must not leave the index
    holding a value that was never stored."""
    module = impl.module
    users = impl("users.db", hooks=[module.UniqueHook("email", use_index=use_index)])
    users["a"] = {"email": "a@x"}
    users["a"] = {"email": "a@x", "v": 2}  # the same key may keep its value
    with pytest.raises(module.NanaSQLiteValidationError, match="Unique constraint violation"):
        users["b"] = {"email": "a@x"}
    with pytest.raises(module.NanaSQLiteValidationError, match="Unique constraint violation"):
        users.batch_update({"c": {"email": "c@x"}, "d": {"email": "c@x"}})
    users["plain"] = "no field"
    del users["a"]
    users["b"] = {"email": "a@x"}  # free again
    users.begin_transaction()
    users["t"] = {"email": "t@x"}
    users.rollback()
    users["u"] = {"email": "t@x"}  # the rolled-back value was never stored
    assert sorted(users.keys()) == ["b", "plain", "u"]

    targets = impl("targets.db")
    targets["p1"] = 1
    orders = impl("orders.db", hooks=[module.ForeignKeyHook("product", targets)])
    orders["o1"] = {"product": "p1"}
    orders["o2"] = {"other": "no reference"}
    with pytest.raises(module.NanaSQLiteValidationError, match="Foreign key constraint violation"):
        orders["o3"] = {"product": "p9"}
    assert sorted(orders.keys()) == ["o1", "o2"]


CATASTROPHIC = ["(a+)+$", "(a*)*", "(a|aa)+", "(?:x{1,})+y", "((ab)*c)*", "(?x) ( a + ) +"]
HARMLESS = ["^user:", r"^\w+:\d+$", "(ab){3}", "a+b+c+", "^(?:x|y)$"]


@pytest.mark.parametrize("re2", [False, True])
def test_key_patterns_refuse_catastrophic_regexes_as_nanasqlite_does(re2, monkeypatch):
    """Without RE2, a hook's key pattern that could backtrack exponentially is refused, as
    NanaSQLite 1.6.2 refuses it; with RE2 every pattern is compiled with it (linear time),
    and what RE2 cannot compile raises unless re_fallback=True."""
    import re

    import nanasqlite.hooks as real_hooks

    import nanad_client.hooks as our_hooks

    assert our_hooks.HAS_RE2, "google-re2 is not installed (run_tests.sh installs it)"
    for module in (our_hooks, real_hooks):
        monkeypatch.setattr(module, "HAS_RE2", re2)
    for pattern in CATASTROPHIC + HARMLESS:
        outcomes = []
        for module in (our_hooks, real_hooks):
            try:
                hook = module.CheckHook(lambda k, v: True, key_pattern=pattern)
                outcomes.append(("ok", bool(hook._should_run("aaaa"))))
            except Exception as exc:  # noqa: BLE001 - the kind is what is compared
                outcomes.append(("refused", type(exc).__name__))
        assert outcomes[0] == outcomes[1], (pattern, outcomes)
        if not re2:
            assert outcomes[0][0] == ("refused" if pattern in CATASTROPHIC else "ok"), pattern
    # A compiled pattern is no way around the check, and flags RE2 lacks need re_fallback.
    if not re2:
        with pytest.raises(NanaSQLiteValidationError, match="ReDoS"):
            our_hooks.BaseHook(key_pattern=re.compile("(a+)+"))
    else:
        with pytest.raises(re.error):
            our_hooks.BaseHook(key_pattern=re.compile("a b", re.VERBOSE))
        with pytest.warns(UserWarning):
            hook = our_hooks.BaseHook(key_pattern=re.compile("a b", re.VERBOSE), re_fallback=True)
        assert hook._should_run("xab")
