#!/usr/bin/env python3
"""Prints a combined matrix: one row per destination role and port, one column
per source (agent) role, each cell the verdict of that path.

    matrix_view.py MATRIX RUN.json...   from sgprobe-agent --once JSON documents
                                        (the worst over the destination's addresses)
    matrix_view.py --view VIEW.json     from the collector's /v1/matrix document

Rows follow the matrix's order of roles."""
import json
import sys

ORDER = ["ok", "unverified", "inconclusive", "no_listener", "tls_failed", "blocked", "violation"]
SHORT = {"ok": "ok", "unverified": "unverif", "inconclusive": "INCONCL", "no_listener": "NOLISTEN",
         "tls_failed": "TLS-FAIL", "blocked": "BLOCKED", "violation": "VIOLATION",
         "unobserved": "unobs", "stale": "STALE", "unknown": "UNKNOWN"}
QUIET = ("ok", "unverified", "unobserved")


def render(role_order, sources, rows, cells, legend):
    """cells: (src, (dst, port)) -> (expected, verdict)."""
    rows.sort(key=lambda r: (role_order.index(r[0]) if r[0] in role_order else len(role_order), r[1]))
    width = max(10, *(len(s) for s in sources)) if sources else 10
    label = max((len(f"{d}:{p}") for d, p in rows), default=10)
    color = sys.stdout.isatty()
    print(f"{'destination:port':<{label}}  " + " ".join(f"{s:<{width}}" for s in sources))
    for dst, port in rows:
        out = []
        for src in sources:
            cell = cells.get((src, (dst, port)))
            text = "-" if not cell else ("+" if cell[0] == "allow" else " ") + SHORT[cell[1]]
            pad = f"{text:<{width}}"
            if color and cell and cell[1] not in QUIET:
                pad = f"\033[1;31m{pad}\033[0m"
            out.append(pad)
        print(f"{dst + ':' + str(port):<{label}}  " + " ".join(out))
    print(legend)


def from_runs(matrix_path, paths):
    role_order = list(json.load(open(matrix_path))["roles"])
    runs = [json.load(open(p)) for p in paths]
    cells, rows = {}, []
    for run in runs:
        for res in run["results"]:
            key = (res["dst_role"], res["port"])
            if key not in rows:
                rows.append(key)
            cell = cells.setdefault((run["role"], key), [res["expected"], "ok"])
            if ORDER.index(res["verdict"]) > ORDER.index(cell[1]):
                cell[1] = res["verdict"]
    render(role_order, [r["role"] for r in runs], rows, cells,
           "\n+ allowed path (must be open); others must be closed. unverif: a timeout towards an"
           "\naddress nothing proved alive, or a silent destination. -: not probed (the agent's own"
           "\ntask, or an allowed path with probe_allowed false).")


def from_view(path):
    view = json.load(open(path))
    sources, role_order, rows, cells = [], [], [], {}
    for c in view["cells"]:
        if c["src_role"] not in sources:
            sources.append(c["src_role"])
        if c["dst_role"] not in role_order:
            role_order.append(c["dst_role"])
        key = (c["dst_role"], c["port"])
        if key not in rows:
            rows.append(key)
        cells[(c["src_role"], key)] = (c["expected"], c["verdict"])
    print(f"matrix {view['matrix']} at {view['generated_at']}, "
          f"{len(view['agents'])} agents reporting")
    render(role_order, sources, rows, cells,
           "\n+ allowed path. unobs: no agent of that role has reported it (its own single task,"
           "\nor not probed). -: no such cell.")


if __name__ == "__main__":
    if sys.argv[1] == "--view":
        from_view(sys.argv[2])
    else:
        from_runs(sys.argv[1], sys.argv[2:])
