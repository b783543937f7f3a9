#!/usr/bin/env python3
"""Checks the layers of `src/` written down in ARCHITECTURE.md ("Layers").

Every file under src/ is a module. Its references to other modules are its `use crate::…` and
`use super::…` imports (test modules excluded) and its inline `crate::…` paths in code (not in
comments or strings). The check fails when a module refers to a module of a higher layer, or
when the references between modules form a circle (a module's own submodules and `super` to
its parent directory's files count like any other module).

    python3 scripts/layers.py            # prints violations; exit 1 if any
    python3 scripts/layers.py --list     # also lists every module's references
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src"

# Top-level module -> layer (higher may use lower, never the reverse).
LAYERS = {
    "clock": 1, "config": 1, "decode": 1, "input": 1,
    "metrics": 2, "pipeline": 2, "storage": 2,
    "service": 3, "labeling": 3, "auth": 3,
    "http": 4, "kafka": 4,
    "server": 5,
    "commands": 6, "main": 6, "lib": 6,
}


def module_of(path: Path) -> tuple:
    """`src/http/mod.rs` -> ("http",), `src/http/auth.rs` -> ("http", "auth")."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def strip(code: str) -> str:
    """Code without comments, string literals and `#[cfg(test)]` modules."""
    code = re.sub(r'r#*"(?:.|\n)*?"#*', '""', code)  # raw strings (rough)
    out, i, n = [], 0, len(code)
    while i < n:
        if code.startswith("//", i):
            j = code.find("\n", i)
            i = n if j < 0 else j
        elif code.startswith("/*", i):
            j = code.find("*/", i)
            i = n if j < 0 else j + 2
        elif code[i] == '"':
            j = i + 1
            while j < n and code[j] != '"':
                j += 2 if code[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif code[i] == "'" and i + 2 < n and (code[i + 2] == "'" or (code[i + 1] == "\\" and "'" in code[i + 2:i + 5])):
            j = code.find("'", i + 2)
            out.append("' '")
            i = j + 1
        else:
            out.append(code[i])
            i += 1
    code = "".join(out)
    # Drop `#[cfg(test)] mod tests { … }` blocks (brace matching).
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", code)
        if not m:
            return code
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        code = code[:m.start()] + code[j:]


def resolve(mod: tuple, path: list, known: set):
    """The longest known module named by `path` (a list of segments after `crate`)."""
    for k in range(len(path), 0, -1):
        if tuple(path[:k]) in known:
            return tuple(path[:k])
    return None


def references(mod: tuple, code: str, known: set) -> set:
    refs = set()
    # use crate::a::{b, c::d}; use super::x;  (brace groups expanded one level)
    for m in re.finditer(r"\buse\s+(crate|super)((?:::[\w{}, :*]+)+?)\s*;", code, re.S):
        root, rest = m.group(1), m.group(2)
        base = [] if root == "crate" else list(mod[:-1])
        heads = re.match(r"((?:::\w+)*)(?:::\{(.*)\})?", rest, re.S)
        prefix = [s for s in heads.group(1).split("::") if s]
        groups = [g.strip() for g in (heads.group(2) or "").split(",") if g.strip()] or [""]
        for g in groups:
            segs = base + prefix + [s for s in re.split(r"::", g.replace("{", "").replace("}", "")) if s and s != "self"]
            target = resolve(mod, segs, known)
            if target:
                refs.add(target)
    for m in re.finditer(r"(?<![\w:])crate((?:::\w+)+)", code):
        target = resolve(mod, [s for s in m.group(1).split("::") if s], known)
        if target:
            refs.add(target)
    for m in re.finditer(r"(?<![\w:])super((?:::\w+)+)", code):
        target = resolve(mod, list(mod[:-1]) + [s for s in m.group(1).split("::") if s], known)
        if target:
            refs.add(target)
    refs.discard(mod)
    return {r for r in refs if not (len(r) > len(mod) and r[:len(mod)] == mod and False)}


def main() -> int:
    files = sorted(ROOT.rglob("*.rs"))
    mods = {module_of(f): f for f in files}
    known = set(mods)
    graph = {m: references(m, strip(f.read_text()), known) for m, f in mods.items()}
    bad = []
    for m, refs in sorted(graph.items()):
        lm = LAYERS.get(m[0])
        if lm is None:
            bad.append(f"{'::'.join(m)}: top-level module not in LAYERS")
            continue
        for r in sorted(refs):
            # A module may name its own submodules (declarations and re-exports).
            if r[:len(m)] == m:
                continue
            if LAYERS.get(r[0], 99) > lm:
                bad.append(f"{'::'.join(m)} (layer {lm}) -> {'::'.join(r)} (layer {LAYERS.get(r[0])})")
    # Circles: strongly connected components of the reference graph, leaving out a parent's
    # references to its own submodules (declaring and re-exporting children is not a use).
    edges = {m: {r for r in refs if r[:len(m)] != m} for m, refs in graph.items()}
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    for c in comps:
        bad.append("import circle: " + " <-> ".join(sorted("::".join(m) for m in c)))
    if "--list" in sys.argv:
        for m, refs in sorted(graph.items()):
            print(f"{'::'.join(m)}: {', '.join(sorted('::'.join(r) for r in refs))}")
    for b in bad:
        print(b)
    print(f"{len(mods)} modules, {sum(len(r) for r in graph.values())} references, {len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
