"""NanaSQLite's ``nanasqlite.sql_utils``: the SQL text helpers its guards use.

Pure Python with no database in it, so the drop-in offers it at the same module path (nanad's
own guards run in the daemon, in Swift: these are for programs that call the helpers). Written
for the drop-in to NanaSQLite 1.6.2's documented behaviour (each function says what it does).
"""

from __future__ import annotations

import re
from typing import List

# Characters an expression may hold for fast_validate_sql_chars (NanaSQLite's set).
_SAFE_SQL_CHARS: frozenset = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ ,.()'=<>!+-*/\"|?:@$`[]"
)

# SQL's lexical tokens, for find_sql_functions: comments, closed string literals and quoted
# identifiers (a doubled quote inside stands for one), bracketed names, names, and any other
# single character (so an unclosed quote is a character of its own).
_TOKEN = re.compile(
    r"--[^\n]*|/\*.*?\*/|'(?:''|[^'])*'|\"(?:\"\"|[^\"])*\"|`(?:``|[^`])*`|\[[^\]]*\]|[A-Za-z_]\w*|\S",
    re.DOTALL,
)
_NAME = re.compile(r"[A-Za-z_]\w*")


def sanitize_sql_for_function_scan(sql: str) -> str:
    """`sql` with string literals (``'…'``, unclosed: to the end) and comments (``--`` to the
    line's end, its newline kept; ``/* … */``, unclosed: to the end) blanked with spaces, and
    the quote characters of double-quoted identifiers blanked but their names kept, so that a
    search for ``name(`` finds only real calls. The length never changes; backslashes escape
    nothing, and backticks and brackets are left as they are."""
    out = list(sql)
    i, n = 0, len(sql)

    def blank(start: int, end: int) -> None:
        for k in range(start, end):
            out[k] = " "

    while i < n:
        c = sql[i]
        if c == "'":
            j = i + 1
            while j < n:
                if sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                        continue
                    j += 1
                    break
                j += 1
            blank(i, min(j, n))
            i = j
        elif c == '"':
            out[i] = " "
            j = i + 1
            while j < n:
                if sql[j] == '"':
                    out[j] = " "
                    if j + 1 < n and sql[j + 1] == '"':
                        out[j + 1] = " "
                        j += 2
                        continue
                    j += 1
                    break
                j += 1
            i = j
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(i, end)
            i = end
        else:
            i += 1
    return "".join(out)


def find_sql_functions(sql: str) -> List[str]:
    """The names of the functions `sql` calls, in order: every name, quoted or bracketed or
    not, followed by ``(``. Nothing inside a string literal or a comment counts."""
    tokens = [t for t in _TOKEN.findall(sql) if not t.startswith(("--", "/*"))]
    names: List[str] = []
    for token, following in zip(tokens, tokens[1:]):
        if following != "(":
            continue
        # A quote left unclosed is a token of its own, and names nothing (""), as in NanaSQLite.
        if token[0] in "'\"`":
            names.append(token[1:-1].replace(token[0] * 2, token[0]))
        elif token[0] == "[":
            names.append(token[1:-1])
        elif _NAME.fullmatch(token):
            names.append(token)
    return names


def fast_validate_sql_chars(expr: str) -> bool:
    """Whether `expr` holds only letters, digits, spaces and ``_,.()'=<>!+-*/"|?:@$`[]``."""
    return all(c in _SAFE_SQL_CHARS for c in expr)


def sanitize_identifier(identifier: str) -> str:
    """`identifier` in double quotes, with its double quotes doubled (an empty one unchanged)."""
    if not identifier:
        return identifier
    return '"' + identifier.replace('"', '""') + '"'


__all__ = ["find_sql_functions", "sanitize_sql_for_function_scan", "fast_validate_sql_chars", "sanitize_identifier"]
