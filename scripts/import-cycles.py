#!/usr/bin/env python3
"""Import cycles between the modules of src/ (one module per file; non-test code only).

Edges come from `use crate::…`/`use super::…` items (groups expanded) and inline
`crate::a::b` / `super::x` paths, each resolved to the deepest module file it names.
Prints each cycle (a strongly connected component) with its edges, then `cycles: N`.
`--edges` also prints every edge; `--forbid A B` fails if module A (or a submodule)
imports B (or a submodule); exit status 1 on any cycle or forbidden edge.
Usage: scripts/import-cycles.py [--edges] [--forbid http storage]...
"""
import collections
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src')


def modules():
    mods = {}
    for d, _, files in os.walk(SRC):
        for f in files:
            p = os.path.relpath(os.path.join(d, f), SRC)
            if not f.endswith('.rs') or p.startswith('bin/') or p in ('main.rs', 'lib.rs'):
                continue
            mods[p[:-3].replace('/mod', '').replace('/', '::')] = os.path.join(d, f)
    return mods


def expand(prefix, tree):
    """`a::{b, c::{d}}` under `prefix` → full paths."""
    m = re.match(r'^([\w:]*?)(?:::)?\{(.*)\}$', tree)
    if not m:
        return [(prefix + '::' + tree).strip(':')]
    base = (prefix + '::' + m.group(1)).strip(':') if m.group(1) else prefix
    items, depth, cur = [], 0, ''
    for ch in m.group(2):
        if ch == ',' and depth == 0:
            items.append(cur)
            cur = ''
            continue
        depth += (ch == '{') - (ch == '}')
        cur += ch
    items.append(cur)
    return [p for item in items if item for p in expand(base, item)]


def graph(mods):
    def resolve(path):
        parts = path.split('::')
        for i in range(len(parts), 0, -1):
            if '::'.join(parts[:i]) in mods:
                return '::'.join(parts[:i])
        return None

    g = collections.defaultdict(set)
    for m, f in mods.items():
        text = re.sub(r'//.*', '', open(f).read().split('#[cfg(test)]')[0])
        parent = m.rsplit('::', 1)[0] if '::' in m else ''
        paths = []
        for head, tree in re.findall(r'use\s+(crate|super)::([^;]+);', text, re.S):
            prefix = '' if head == 'crate' else parent
            for p in expand(prefix, re.sub(r'\s+', '', tree)):
                paths.append(re.sub(r'::self$', '', p.split(' as ')[0]))
        paths += re.findall(r'crate::([\w:]+)', text)
        paths += [(parent + '::' + p).strip(':') for p in re.findall(r'(?<!use )\bsuper::([\w:]+)', text)]
        for p in paths:
            t = resolve(p.rstrip(':'))
            if t and t != m and not m.startswith(t + '::'):
                g[m].add(t)
    return g


def cycles(mods, g):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(100000)

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
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
                out.append(sorted(comp))

    for v in sorted(mods):
        if v not in index:
            visit(v)
    return out


def main():
    args = sys.argv[1:]
    mods = modules()
    g = graph(mods)
    failed = False
    if '--edges' in args:
        for a in sorted(g):
            for b in sorted(g[a]):
                print(a, '->', b)
    found = cycles(mods, g)
    for comp in found:
        print('CYCLE:', ' '.join(comp))
        for a in comp:
            for b in sorted(g[a]):
                if b in comp:
                    print('   ', a, '->', b)
    print('cycles:', len(found))
    failed |= bool(found)
    i = 0
    while i < len(args):
        if args[i] == '--forbid':
            a, b = args[i + 1], args[i + 2]
            within = lambda m, top: m == top or m.startswith(top + '::')
            for m in sorted(g):
                for t in sorted(g[m]):
                    if within(m, a) and within(t, b):
                        print(f'FORBIDDEN: {m} -> {t}')
                        failed = True
            i += 3
        else:
            i += 1
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
