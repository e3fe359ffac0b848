"""Values sealed by nanad's ValueCipher open in Python: with `cryptography` directly, and with the
real NanaSQLite 1.6.2 reading them from its own table.

The sealed values are Tests/NanaStorageTests/Fixtures/valuecipher-sealed.json, written by
ValueCipher (NANAD_WRITE_CIPHER_VECTORS=1 swift test --filter ValueCipherTests) and checked on
the Swift side by ValueCipherTests. The other direction (files NanaSQLite encrypted, opened by
ValueCipher) is Fixtures/make_encrypted_fixture.py and ValueCipherTests. No daemon is needed.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import warnings

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

nanasqlite = __import__("nanasqlite")
assert nanasqlite.__version__ == "1.6.2"

warnings.filterwarnings("ignore", module="nanasqlite")

REPO = pathlib.Path(__file__).resolve().parents[3]
VECTORS = json.loads((REPO / "Tests" / "NanaStorageTests" / "Fixtures" / "valuecipher-sealed.json").read_text("utf-8"))["vectors"]
AEADS = {"aes-gcm": AESGCM, "chacha20": ChaCha20Poly1305}


def test_the_vectors_cover_both_modes_and_every_aes_key_size():
    assert {v["mode"] for v in VECTORS} == {"aes-gcm", "chacha20"}
    assert {len(bytes.fromhex(v["key_hex"])) for v in VECTORS if v["mode"] == "aes-gcm"} == {16, 24, 32}


def test_cryptography_opens_what_valuecipher_sealed():
    for v in VECTORS:
        key = bytes.fromhex(v["key_hex"])
        sealed = bytes.fromhex(v["sealed_hex"])
        plaintext = v["plaintext"].encode("utf-8")
        assert len(sealed) == 12 + len(plaintext) + 16
        nonce, ciphertext_and_tag = sealed[:12], sealed[12:]
        assert AEADS[v["mode"]](key).decrypt(nonce, ciphertext_and_tag, None) == plaintext


def test_nanasqlite_reads_rows_valuecipher_sealed(tmp_path):
    for mode in AEADS:
        rows = [v for v in VECTORS if v["mode"] == mode and len(bytes.fromhex(v["key_hex"])) == 32 and v["plaintext"]]
        assert rows
        key = bytes.fromhex(rows[0]["key_hex"])
        path = str(tmp_path / f"{mode}.db")
        db = nanasqlite.NanaSQLite(path, encryption_key=key, encryption_mode=mode)  # creates the table
        db.close()
        conn = sqlite3.connect(path)
        conn.executemany(
            'INSERT INTO "data" (key, value) VALUES (?, ?)',
            [(f"k{i}", bytes.fromhex(v["sealed_hex"])) for i, v in enumerate(rows)],
        )
        conn.commit()
        conn.close()
        db = nanasqlite.NanaSQLite(path, encryption_key=key, encryption_mode=mode)
        try:
            for i, v in enumerate(rows):
                assert db[f"k{i}"] == json.loads(v["plaintext"])
        finally:
            db.close()
