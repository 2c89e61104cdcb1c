#!/usr/bin/env python3
"""Writes a copy of Zuora's OpenAPI spec that Stoplight Prism can load.

Zuora's published compact spec (zuora-openapi-full-compact.yaml) carries a few relative
`$ref`s to files that are not published with it (e.g. `./actiontype.yaml`,
`../../components/schemas/Mediation/MediationTruncateErrorResponse.yaml`); Prism aborts
with ENOENT on them. Each such reference is patched where it stands, found by its shape,
not by line number (Zuora's copy moves between releases):

- a `$ref` whose mapping already has its own `type:` is dropped (the type stays);
- any other becomes `type: object`, the loosest schema that keeps the document valid.

Local references (`#/...`) and absolute URLs are left alone. The spec itself is Zuora's and
is never copied into this repository; this script only patches a copy at test time.

Usage: zuora-prism-spec.py SPEC.yaml OUT.yaml
"""

import re
import sys

DANGLING = re.compile(r"""^(?P<indent>\s*)\$ref:\s*['"]?(?P<target>[^'"#\s][^'"\s]*)['"]?\s*$""")


def indent_of(line):
    return len(line) - len(line.lstrip(" "))


def sibling_has_type(lines, at, indent):
    """Whether the mapping that holds line `at` (keys at `indent`) has a `type:` key."""
    for step in (-1, 1):
        i = at + step
        while 0 <= i < len(lines):
            line = lines[i]
            if line.strip() == "":
                i += step
                continue
            depth = indent_of(line)
            if depth < indent:
                break
            if depth == indent and line.lstrip().startswith("type:"):
                return True
            i += step
    return False


def patch(lines):
    out, changes = [], []
    for number, line in enumerate(lines):
        match = DANGLING.match(line)
        if not match or "://" in match.group("target"):
            out.append(line)
            continue
        indent = len(match.group("indent"))
        if sibling_has_type(lines, number, indent):
            changes.append(f"line {number + 1}: dropped $ref {match.group('target')} (its schema has a type)")
            continue
        out.append(" " * indent + "type: object\n")
        changes.append(f"line {number + 1}: $ref {match.group('target')} -> type: object")
    return out, changes


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: zuora-prism-spec.py SPEC.yaml OUT.yaml\n")
        return 64
    with open(argv[1], encoding="utf-8") as spec:
        lines = spec.readlines()
    if not any(line.startswith("openapi:") for line in lines[:5]):
        sys.stderr.write(f"{argv[1]}: not an OpenAPI document (no `openapi:` line at the top)\n")
        return 1
    out, changes = patch(lines)
    with open(argv[2], "w", encoding="utf-8") as target:
        target.writelines(out)
    for change in changes:
        sys.stderr.write(f"zuora-prism-spec: {change}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
