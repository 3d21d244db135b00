#!/usr/bin/env python3
"""Checks exported optout snapshots the way another engine uses them.

    check_snapshot.py --profiles PROFILES --expected EXPECTED.json SNAPSHOT_DIR...

For each snapshot directory (a `--format roaring` or `--format parquet` export):

1. checks that every file listed in snapshot.json has the listed SHA-256, size and
   member count, and that jurisdiction_rules.csv is the manifest's `jurisdictions`;
2. reads the member sets the way other engines do (the Roaring files with pyroaring's
   BitMap64, the Parquet files with pyarrow) and compares them with the expected sets;
3. runs the DuckDB SQL from docs/snapshots.md verbatim (the blocks between its
   `optout-test` markers, so the documentation is what is tested) over the profiles
   and compares the allowed rows with the expected answer.

PROFILES is CSV (header `member_id,country`, extra columns allowed) or Parquet with
those columns. EXPECTED.json holds `explicit_allowed`, `explicit_denied` and `allowed`
(lists of member ids) and optionally `purpose`, `cutoff` and `position`, which must
match the manifest.

Exit status: 0 all checks passed, 1 a check failed, 2 bad usage or unreadable input,
3 a needed Python module is missing (run scripts/test.sh, which installs them).
"""

import argparse
import collections
import hashlib
import json
import os
import re
import sys

REQUIRED_MODULES = ("duckdb", "pyarrow", "pyroaring")
SET_NAMES = ("explicit_allowed", "explicit_denied")
RULE_COLUMNS = (
    "jurisdiction",
    "mode",
    "allowed_without_choice",
    "allowed_with_explicit_allow",
    "allowed_with_explicit_deny",
)
DEFAULT_DOC = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "snapshots.md"
)
# How many differing ids a message lists.
SHOWN_MAX = 10


class CheckFailed(Exception):
    """A snapshot does not match what is expected (exit 1)."""


class BadInput(Exception):
    """Bad usage or unreadable input (exit 2)."""


def import_modules():
    missing = []
    modules = {}
    for name in REQUIRED_MODULES:
        try:
            modules[name] = __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        print(
            "check_snapshot: missing Python modules: "
            + ", ".join(missing)
            + f" (python {sys.executable}); run scripts/test.sh, or "
            + "pip install -r scripts/requirements-test.txt",
            file=sys.stderr,
        )
        sys.exit(3)
    return modules


def doc_block(doc_text, doc_path, name):
    """The code inside the fenced block between the `optout-test` markers named NAME."""
    pattern = re.compile(
        r"<!--\s*optout-test:begin\s+" + re.escape(name) + r"\s*-->\s*"
        r"```[A-Za-z0-9_-]*\n(?P<code>.*?)^```\s*"
        r"<!--\s*optout-test:end\s+" + re.escape(name) + r"\s*-->",
        re.DOTALL | re.MULTILINE,
    )
    found = list(pattern.finditer(doc_text))
    if len(found) != 1:
        raise BadInput(
            f"{doc_path}: expected exactly one fenced block between "
            f"<!-- optout-test:begin {name} --> and <!-- optout-test:end {name} -->, "
            f"found {len(found)}"
        )
    return found[0].group("code")


def describe_difference(what, got, expected):
    missing = sorted(expected - got)
    extra = sorted(got - expected)
    parts = [f"{what}: {len(got)} members, expected {len(expected)}"]
    if missing:
        parts.append(
            f"{len(missing)} missing (e.g. {', '.join(map(str, missing[:SHOWN_MAX]))})"
        )
    if extra:
        parts.append(
            f"{len(extra)} unexpected (e.g. {', '.join(map(str, extra[:SHOWN_MAX]))})"
        )
    return "; ".join(parts)


def expect_equal_sets(what, got, expected):
    if got != expected:
        raise CheckFailed(describe_difference(what, got, expected))


def load_json(path, what):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError) as error:
        raise BadInput(f"cannot read {what} {path}: {error}") from error


def load_expected(path):
    data = load_json(path, "expected answers")
    expected = {}
    for key in SET_NAMES + ("allowed",):
        values = data.get(key)
        if not isinstance(values, list) or not all(
            isinstance(value, int) and 0 <= value < 2**64 for value in values
        ):
            raise BadInput(f"{path}: `{key}` must be a list of unsigned 64-bit ids")
        expected[key] = set(values)
    for key in ("purpose", "cutoff", "position"):
        if key in data:
            expected[key] = data[key]
    return expected


def check_manifest(directory, manifest, expected):
    for key in ("purpose", "cutoff", "position"):
        if key in expected and manifest.get(key) != expected[key]:
            raise CheckFailed(
                f"snapshot.json: {key} is {manifest.get(key)!r}, expected {expected[key]!r}"
            )
    listed = {}
    for entry in manifest.get("files", []):
        path = os.path.join(directory, entry["name"])
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError as error:
            raise CheckFailed(f"{entry['name']}: listed in snapshot.json but {error}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"] or len(data) != entry["bytes"]:
            raise CheckFailed(
                f"{entry['name']}: {len(data)} bytes with SHA-256 {digest}, the manifest "
                f"says {entry['bytes']} bytes with {entry['sha256']}"
            )
        listed[entry["set"]] = entry
    for name in SET_NAMES + ("jurisdiction_rules",):
        if name not in listed:
            raise CheckFailed(f"snapshot.json lists no `{name}` file")
    # The CSV an engine reads must say what the signed manifest says.
    with open(os.path.join(directory, listed["jurisdiction_rules"]["name"]), encoding="utf-8") as file:
        lines = file.read().splitlines()
    if not lines or lines[0] != ",".join(RULE_COLUMNS):
        raise CheckFailed(f"jurisdiction_rules.csv: unexpected header {lines[:1]!r}")
    from_manifest = [
        ",".join(
            str(rule[column]).lower() if isinstance(rule[column], bool) else rule[column]
            for column in RULE_COLUMNS
        )
        for rule in manifest.get("jurisdictions", [])
    ]
    if lines[1:] != from_manifest:
        raise CheckFailed("jurisdiction_rules.csv differs from the manifest's `jurisdictions`")
    return listed


def read_roaring(modules, path):
    with open(path, "rb") as file:
        data = file.read()
    try:
        return set(modules["pyroaring"].BitMap64.deserialize(data))
    except Exception as error:  # pyroaring raises ValueError (and others) on bad input
        raise CheckFailed(f"{path}: pyroaring cannot read it as a portable 64-bit bitmap: {error}")


def read_parquet(modules, path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:
        raise CheckFailed(f"{path}: pyarrow cannot read it: {error}")
    schema = table.schema
    if schema.names != ["member_id"]:
        raise CheckFailed(f"{path}: columns {schema.names}, expected ['member_id']")
    field = schema.field("member_id")
    if field.type != pa.uint64() or field.nullable:
        raise CheckFailed(
            f"{path}: member_id is {field.type} (nullable={field.nullable}), "
            "expected non-null uint64"
        )
    column = table.column("member_id")
    if column.null_count:
        raise CheckFailed(f"{path}: member_id has {column.null_count} nulls")
    ids = column.to_pylist()
    if any(later <= earlier for earlier, later in zip(ids, ids[1:])):
        raise CheckFailed(f"{path}: member_id is not strictly ascending")
    return set(ids)


def create_profiles_view(con, profiles):
    quoted = profiles.replace("'", "''")
    if profiles.lower().endswith(".parquet"):
        con.execute(f"CREATE TEMP VIEW profiles AS SELECT * FROM read_parquet('{quoted}')")
    else:
        # Explicit types: the country column holds codes such as NA and NO, never nulls
        # or booleans; an empty field is a missing country.
        con.execute(
            f"""CREATE TEMP VIEW profiles AS SELECT * FROM read_csv('{quoted}',
                header = true, auto_detect = false, delim = ',', quote = '"',
                columns = {{'member_id': 'UBIGINT', 'country': 'VARCHAR'}})"""
        )


def run_documented_sql(modules, doc, snapshot_format, directory, profiles):
    """Runs the documented DuckDB SQL; returns the member ids of the allowed rows."""
    doc_path, doc_text = doc
    con = modules["duckdb"].connect()
    try:
        create_profiles_view(con, profiles)
        con.execute("SET VARIABLE optout_snapshot = ?", [os.path.abspath(directory)])
        if snapshot_format == "parquet":
            con.execute(doc_block(doc_text, doc_path, "duckdb-sets-parquet"))
        elif snapshot_format == "roaring":
            code = doc_block(doc_text, doc_path, "python-roaring-sets")
            namespace = {"__name__": "optout_doc_python_roaring_sets"}
            exec(compile(code, f"{doc_path} (python-roaring-sets)", "exec"), namespace)
            namespace["register_roaring_sets"](con, directory)
        else:
            raise BadInput(f"{directory}: unknown snapshot format {snapshot_format!r}")
        con.execute(doc_block(doc_text, doc_path, "duckdb-apply"))
        allowed_rows = [row[0] for row in con.execute("SELECT member_id FROM allowed_profiles").fetchall()]
        profile_rows = [row[0] for row in con.execute("SELECT member_id FROM profiles").fetchall()]
        columns = [row[0] for row in con.execute("DESCRIBE allowed_profiles").fetchall()]
        profile_columns = [row[0] for row in con.execute("DESCRIBE profiles").fetchall()]
    finally:
        con.close()
    if columns != profile_columns:
        raise CheckFailed(f"allowed_profiles has columns {columns}, profiles has {profile_columns}")
    return allowed_rows, profile_rows


def check_directory(modules, doc, directory, profiles, expected):
    manifest = load_json(os.path.join(directory, "snapshot.json"), "snapshot manifest")
    listed = check_manifest(directory, manifest, expected)
    snapshot_format = manifest.get("format")
    for name in SET_NAMES:
        entry = listed[name]
        path = os.path.join(directory, entry["name"])
        if snapshot_format == "roaring":
            got = read_roaring(modules, path)
            reader = "pyroaring BitMap64"
        else:
            got = read_parquet(modules, path)
            reader = "pyarrow"
        expect_equal_sets(f"{entry['name']} read with {reader}", got, expected[name])
        if entry["members"] != len(got):
            raise CheckFailed(
                f"{entry['name']}: holds {len(got)} members, the manifest says {entry['members']}"
            )
    if expected["explicit_allowed"] & expected["explicit_denied"]:
        raise BadInput("the expected explicit sets overlap")

    allowed_rows, profile_rows = run_documented_sql(
        modules, doc, snapshot_format, directory, profiles
    )
    expect_equal_sets(
        "the documented DuckDB SQL's allowed members", set(allowed_rows), expected["allowed"]
    )
    # Every allowed profile row exactly once: no row lost or duplicated by the joins.
    got_counts = collections.Counter(allowed_rows)
    want_counts = collections.Counter(
        member for member in profile_rows if member in expected["allowed"]
    )
    if got_counts != want_counts:
        wrong = sorted(
            member
            for member in set(got_counts) | set(want_counts)
            if got_counts[member] != want_counts[member]
        )
        raise CheckFailed(
            f"the documented DuckDB SQL returned {len(allowed_rows)} rows, expected "
            f"{sum(want_counts.values())}; row counts differ for members "
            + ", ".join(map(str, wrong[:SHOWN_MAX]))
        )
    return snapshot_format, len(allowed_rows)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", required=True, help="CSV or Parquet: member_id, country")
    parser.add_argument("--expected", required=True, help="JSON with the expected sets")
    parser.add_argument("--doc", default=DEFAULT_DOC, help="docs/snapshots.md")
    parser.add_argument("snapshots", nargs="+", metavar="SNAPSHOT_DIR")
    args = parser.parse_args(argv)

    modules = import_modules()
    try:
        try:
            with open(args.doc, encoding="utf-8") as file:
                doc = (args.doc, file.read())
        except OSError as error:
            raise BadInput(f"cannot read {args.doc}: {error}") from error
        if not os.path.exists(args.profiles):
            raise BadInput(f"no profiles file {args.profiles}")
        expected = load_expected(args.expected)
        for directory in args.snapshots:
            try:
                snapshot_format, rows = check_directory(
                    modules, doc, directory, args.profiles, expected
                )
            except CheckFailed as error:
                raise CheckFailed(f"{directory}: {error}") from error
            print(
                f"ok: {directory} ({snapshot_format}): explicit_allowed "
                f"{len(expected['explicit_allowed'])}, explicit_denied "
                f"{len(expected['explicit_denied'])}, allowed members "
                f"{len(expected['allowed'])} ({rows} profile rows) as expected"
            )
    except CheckFailed as error:
        print(f"check_snapshot: FAILED: {error}", file=sys.stderr)
        return 1
    except BadInput as error:
        print(f"check_snapshot: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
