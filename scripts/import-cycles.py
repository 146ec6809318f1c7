#!/usr/bin/env python3
"""Import circles between the files of devenv-core (crates/core/src).

A file depends on another when its code (not its comments or tests) names a path
into it (`crate::a::b`, `super::c`). Prints each strongly connected set of files.
Exits 1 when a circle crosses rooms (top-level modules) or lies inside `engine/`,
whose rooms must depend one way (docs/architecture.md); circles between sibling
files of one other room (two types of one config module naming each other) are
printed but allowed.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "core", "src")


def module_path(path):
    parts = path[:-3].split("/")
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def main():
    files = {}
    for dirpath, _, names in os.walk(ROOT):
        for name in names:
            if name.endswith(".rs"):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, ROOT)
                with open(full, encoding="utf-8") as f:
                    text = f.read().split("#[cfg(test)]")[0]
                files[rel] = re.sub(r"//[^\n]*", "", text)

    def resolve(parts):
        for i in range(len(parts), 0, -1):
            stem = "/".join(parts[:i])
            for cand in (stem + ".rs", stem + "/mod.rs"):
                if cand in files:
                    return cand
        return None

    edges = {}
    for path, text in files.items():
        here = module_path(path)
        deps = set()
        for m in re.finditer(r"\b((?:crate|super|self)(?:::(?:super|\w+))*)", text):
            cur, rest = list(here), []
            for seg in m.group(1).split("::"):
                if seg == "crate":
                    cur = []
                elif seg == "super":
                    cur = cur[:-1]
                elif seg != "self":
                    rest.append(seg)
            target = resolve(cur + rest)
            if target and target != path:
                deps.add(target)
        edges[path] = deps

    # Tarjan's strongly connected components, iteratively.
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))

    bad = False
    for comp in comps:
        rooms = {c.split("/")[0].removesuffix(".rs") for c in comp}
        forbidden = len(rooms) > 1 or "engine" in rooms
        bad |= forbidden
        print(("circle: " if forbidden else "allowed (one room): ") + " <-> ".join(comp))
        if forbidden:
            for v in comp:
                print(f"    {v} -> {', '.join(w for w in sorted(edges[v]) if w in comp)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
