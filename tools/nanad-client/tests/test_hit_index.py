"""The near-cache's hit (_hit.c and its Python twin _near.PyHitIndex), on a board of its own:
both answer exactly when the entry is good, and miss on everything else without raising."""

from __future__ import annotations

import mmap
import os
import shutil
import sysconfig

import pytest

from nanad_client import _near

try:
    from nanad_client import _hit
except ImportError:  # pragma: no cover - asserted below where a compiler exists
    _hit = None

KINDS = [_near.PyHitIndex] + ([_hit.Index] if _hit is not None else [])
KEY_WORD, TABLE_WORD = 10, 9


def test_the_c_hit_is_built_where_a_compiler_is():
    # The package falls back to the Python twin only without a compiler; with one (as here)
    # a missing module would be a build defect, not a choice.
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None or not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
        pytest.skip("no C compiler: the Python twin is what installs")
    assert _hit is not None and _near.HitIndex is _hit.Index


@pytest.fixture
def board():
    mm = mmap.mmap(-1, 32 * 8)
    words = memoryview(mm).cast("Q")
    words[KEY_WORD] = 1 << 40
    words[TABLE_WORD] = 7
    yield words
    words.release()


def entry(value, *, key_word=KEY_WORD, key_stamp=1 << 40, table_stamp=7, slow=False):
    return [value, key_word, key_stamp, table_stamp, slow, 100, 0.0, False]


@pytest.mark.parametrize("kind", KINDS)
def test_a_good_entry_is_answered_and_marked_used(kind, board):
    entries = {"k": entry({"v": 1}), "gone": entry(_near.ABSENT)}
    index = kind(entries, board, TABLE_WORD, _near.MISS)
    value = index("k")
    assert value is entries["k"][0]  # the cached object itself
    assert entries["k"][7] is True
    assert index("gone") is _near.ABSENT
    assert index.hits == 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_moved_stamp_misses(kind, board):
    entries = {"k": entry(1)}
    index = kind(entries, board, TABLE_WORD, _near.MISS)
    board[KEY_WORD] += 1
    assert index("k") is _near.MISS
    board[KEY_WORD] -= 1
    board[TABLE_WORD] += 1
    assert index("k") is _near.MISS
    board[TABLE_WORD] -= 1
    assert index("k") == 1
    assert index.hits == 1 and entries["k"][7] is True


@pytest.mark.parametrize("kind", KINDS)
def test_what_the_fast_path_leaves_to_the_full_one(kind, board):
    entries = {"ttl": entry(1, slow=True), "bad": entry(1, key_word=10_000), "neg": entry(1, key_word=-1),
               "str": entry(1, key_stamp="x"), "short": [1, KEY_WORD]}
    index = kind(entries, board, TABLE_WORD, _near.MISS)
    for key in ("ttl", "bad", "neg", "str", "short", "missing", ["unhashable"]):
        assert index(key) is _near.MISS, key
    assert index.hits == 0


@pytest.mark.parametrize("kind", KINDS)
def test_bypassed_misses_everything_until_released(kind, board):
    entries = {"k": entry(1)}
    index = kind(entries, board, TABLE_WORD, _near.MISS)
    index.bypassed = True
    assert index("k") is _near.MISS
    index.bypassed = False
    assert index("k") == 1


@pytest.mark.parametrize("kind", KINDS)
def test_it_follows_the_entries_it_was_given(kind, board):
    entries: dict = {}
    index = kind(entries, board, TABLE_WORD, _near.MISS)
    assert index("k") is _near.MISS
    entries["k"] = entry("v")
    assert index("k") == "v"
    entries.clear()
    assert index("k") is _near.MISS


@pytest.mark.parametrize("kind", KINDS)
def test_a_table_word_outside_the_board_is_refused(kind, board):
    with pytest.raises(ValueError):
        kind({}, board, 32, _near.MISS)
