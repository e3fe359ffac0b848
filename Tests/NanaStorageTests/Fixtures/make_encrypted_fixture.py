"""Writes nanasqlite-1.6.2-aesgcm.db and nanasqlite-1.6.2-chacha20.db with the real NanaSQLite 1.6.2
and its encryption (pip install nanasqlite==1.6.2 cryptography).

The storage tests (ValueCipherTests.swift) read every row back and decrypt it with nanad's
ValueCipher under FIXTURE_KEY, then compare the JSON text with EXPECTED_JSON. Regenerate with:
    python3 make_encrypted_fixture.py

What NanaSQLite 1.6.2 writes for an encrypted value (checked below with the sqlite3 module): a
BLOB of nonce (12 random bytes) || ciphertext || tag (16 bytes), no AAD; the plaintext is the
JSON text (stdlib json.dumps(value, ensure_ascii=False) when orjson is not installed, as here).
Keys stay plaintext TEXT.

Manual check the other way (a value sealed by nanad's ValueCipher, opened by Python's
`cryptography`):
    python3 make_encrypted_fixture.py --open aes-gcm <hex of nonce||ciphertext||tag>
prints the plaintext. In the test suite, tools/nanad-client/tests/test_encryption_compat.py opens
the values ValueCipher sealed into valuecipher-sealed.json (beside this script) with
`cryptography` and with NanaSQLite itself.
"""
import json
import os
import sqlite3
import sys

# The fixture key: 32 fixed bytes, valid for both AES-256-GCM and ChaCha20-Poly1305.
# It is a test key, published here on purpose; never use it for real data.
FIXTURE_KEY = bytes(range(0x20, 0x40))  # b' !"#$%&\'()*+,-./0123456789:;<=>?'

# key -> value stored; the JSON text each decrypts to is json.dumps(value, ensure_ascii=False).
VALUES = {
    "dict": {"name": "Zoë", "greeting": "こんにちは", "emoji": "🔐", "nested": {"n": [1, 2.5, True]}},
    "list": [1, "two", 3.0, None, False, {"k": "v"}],
    "int": 42,
    "string": "héllo wörld",
    "none": None,
}

FILES = {"aes-gcm": "nanasqlite-1.6.2-aesgcm.db", "chacha20": "nanasqlite-1.6.2-chacha20.db"}


def aead(mode, key=FIXTURE_KEY):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    return AESGCM(key) if mode == "aes-gcm" else ChaCha20Poly1305(key)


def make(mode, path):
    import nanasqlite

    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = nanasqlite.NanaSQLite(path, encryption_key=FIXTURE_KEY, encryption_mode=mode)
    for key, value in VALUES.items():
        db[key] = value
    db.close()

    # Check what NanaSQLite wrote, without NanaSQLite.
    conn = sqlite3.connect(path)
    rows = dict(conn.execute('SELECT key, value FROM "data"').fetchall())
    conn.close()
    assert set(rows) == set(VALUES), rows.keys()
    for key, stored in rows.items():
        assert isinstance(stored, bytes), (key, type(stored))  # a BLOB
        expected = json.dumps(VALUES[key], ensure_ascii=False).encode("utf-8")
        assert len(stored) == 12 + len(expected) + 16, (key, len(stored))
        nonce, sealed = stored[:12], stored[12:]
        assert aead(mode).decrypt(nonce, sealed, None) == expected, key

    # And NanaSQLite reads its own file back.
    db = nanasqlite.NanaSQLite(path, encryption_key=FIXTURE_KEY, encryption_mode=mode)
    assert {key: db[key] for key in VALUES} == VALUES
    db.close()
    print(f"{path}: {len(rows)} encrypted rows ({mode})")


def open_hex(mode, hex_text):
    stored = bytes.fromhex(hex_text)
    return aead(mode).decrypt(stored[:12], stored[12:], None).decode("utf-8")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--open":
        print(open_hex(sys.argv[2], sys.argv[3]))
    else:
        os.chdir(os.path.dirname(os.path.abspath(__file__)))
        for mode, path in FILES.items():
            make(mode, path)
        print("expected JSON:")
        for key, value in VALUES.items():
            print(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
