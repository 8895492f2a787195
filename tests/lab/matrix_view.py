#!/usr/bin/env python3
"""Prints the combined matrix of a lab run: one row per destination role and
port, one column per source (agent) role, each cell the verdict of that path
(the worst over the destination's addresses). Reads the --once JSON documents
given after the matrix file, in the order of the columns; rows follow the
matrix's order of roles."""
import json
import sys

ORDER = ["ok", "unverified", "inconclusive", "no_listener", "tls_failed", "blocked", "violation"]
SHORT = {"ok": "ok", "unverified": "unverif", "inconclusive": "INCONCL", "no_listener": "NOLISTEN",
         "tls_failed": "TLS-FAIL", "blocked": "BLOCKED", "violation": "VIOLATION"}


def main(matrix_path, paths):
    role_order = list(json.load(open(matrix_path))["roles"])
    runs = [json.load(open(p)) for p in paths]
    sources = [r["role"] for r in runs]
    cells, rows = {}, []
    for run in runs:
        for res in run["results"]:
            key = (res["dst_role"], res["port"])
            if key not in rows:
                rows.append(key)
            cell = cells.setdefault((run["role"], key), [res["expected"], "ok"])
            if ORDER.index(res["verdict"]) > ORDER.index(cell[1]):
                cell[1] = res["verdict"]
    rows.sort(key=lambda r: (role_order.index(r[0]) if r[0] in role_order else len(role_order), r[1]))
    width = max(10, *(len(s) for s in sources))
    label = max(len(f"{d}:{p}") for d, p in rows) if rows else 10
    color = sys.stdout.isatty()
    print(f"{'destination:port':<{label}}  " + " ".join(f"{s:<{width}}" for s in sources))
    for dst, port in rows:
        out = []
        for src in sources:
            cell = cells.get((src, (dst, port)))
            if not cell:
                text = "-"  # not probed: the agent's own task, or probe_allowed false
            else:
                text = ("+" if cell[0] == "allow" else " ") + SHORT[cell[1]]
            pad = f"{text:<{width}}"
            if color and cell and cell[1] not in ("ok", "unverified"):
                pad = f"\033[1;31m{pad}\033[0m"
            out.append(pad)
        print(f"{dst + ':' + str(port):<{label}}  " + " ".join(out))
    print("\n+ allowed path (must be open); others must be closed. unverif: a timeout towards an"
          "\naddress nothing proved alive, or a silent destination. -: not probed (the agent's own\ntask, or an allowed path with probe_allowed false).")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
