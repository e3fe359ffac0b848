"""Writes nanasqlite-1.6.2.db with the real NanaSQLite 1.6.2 (pip install nanasqlite==1.6.2).

The storage tests read it back through nanad's storage layer. Regenerate with:
    python3 make_fixture.py
"""
import nanasqlite

db = nanasqlite.NanaSQLite("nanasqlite-1.6.2.db")
db["str"] = "héllo"
db["int"] = 42
db["float"] = 5.0
db["bool"] = True
db["none"] = None
db["list"] = [1, 2.5, "x", False, None]
db["nested"] = {"b": 1, "a": {"deep": [1, {"x": "y"}]}}
db[""] = "empty key"
db["big"] = 2**63 - 1
db["neg"] = -17
users = db.table("users")
users["alice"] = {"name": "Alice", "age": 30, "admin": True}
users["bob"] = {"name": "Bob", "age": 25.5, "admin": False}
db.close()
