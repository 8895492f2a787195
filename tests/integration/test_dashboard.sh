#!/bin/bash
# The dashboard (collector/dashboard.html, GET / on the admin listener) in a
# real browser: headless Chromium (Debian package `chromium`) loads the page,
# lets it fetch v1/matrix, and the test checks the rendered DOM against the
# matrix view it was given: every cell with its verdict (class, data
# attributes, text), the violation cell red, the unknown cells in their own
# table, the agents, the summary, the details panel of a cell, the error banner.
# The screenshot is kept in tests/out/dashboard.png.
#
# Without SGPROBE_DASHBOARD_URL the page and a fixture v1/matrix are served by
# `python3 -m http.server` on 127.0.0.1. With SGPROBE_DASHBOARD_URL (a running
# collector's admin listener, e.g. http://127.0.0.1:9090/) the page and the
# view come from there: the checks follow whatever its v1/matrix holds, and
# that must include a violation cell, an ok cell and an agent; the files are
# then tests/out/dashboard_live*, so that the two runs keep both screenshots.
# Either way the red of the violation is counted against the same page
# without data (served by http.server beside no v1/matrix: the error banner).
#
# Contacts nothing but 127.0.0.1. Installs nothing.
set -u
. "$(dirname "$0")/../lib.sh"
cd "$top" || exit 2
out="$top/tests/out"
mkdir -p "$out"
work=$(mktemp -d)
server_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
# The files this run keeps: tests/out/$shot.png, ${shot}_details.png, ...
if [ -n "${SGPROBE_DASHBOARD_URL:-}" ]; then shot=dashboard_live; else shot=dashboard; fi
chrome_log="$out/${shot}_chromium.log"
: >"$chrome_log"

# chrome ARGS... URL: one headless Chromium run with a fresh profile, only
# loopback in reach: no proxy, no background services, and every host name
# but 127.0.0.1 unresolvable (without that rule Chromium still asks the DNS
# server for Google's hosts at start-up).
chrome() {
	local profile
	profile=$(mktemp -d "$work/profile.XXXXXX")
	echo "# chromium $*" >>"$chrome_log"
	timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--no-default-browser-check --no-proxy-server \
		--host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" --user-data-dir="$profile" \
		--virtual-time-budget=5000 "$@" 2>>"$chrome_log"
}

if ! command -v chromium >/dev/null 2>&1; then
	not_ok "chromium is installed" "Debian package chromium: scripts/deps.sh installs it"
	done_testing
	exit
fi

# ---- what to load ------------------------------------------------------------
# serve_site: serves $work/site on a free loopback port; sets $port.
serve_site() {
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	python3 -m http.server --bind 127.0.0.1 --directory "$site" "$port" >"$out/${shot}_http.log" 2>&1 &
	server_pid=$!
	python3 - "$port" <<'PY'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

site="$work/site"
mkdir -p "$site/v1" "$site/broken"
if [ -n "${SGPROBE_DASHBOARD_URL:-}" ]; then
	url=$SGPROBE_DASHBOARD_URL
	if ! python3 -c 'import sys, urllib.parse as u; sys.exit(u.urlsplit(sys.argv[1]).hostname != "127.0.0.1")' "$url"; then
		not_ok "SGPROBE_DASHBOARD_URL is on 127.0.0.1" "got $url"
		done_testing
		exit
	fi
	# The collector's own page, served where v1/matrix does not exist: the
	# baseline of the colour check and the error banner.
	if ! python3 - "$url" "$site/broken/index.html" <<'PY'; then
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=10) as r:
    open(sys.argv[2], "wb").write(r.read())
PY
		not_ok "the collector serves the dashboard" "at $url"
		done_testing
		exit
	fi
	serve_site
	broken_url="http://127.0.0.1:$port/broken/"
	mode=collector
else
	cp collector/dashboard.html "$site/index.html"
	# The same page where v1/matrix does not exist: the fetch fails.
	cp collector/dashboard.html "$site/broken/index.html"
	cat >"$site/v1/matrix" <<'JSON'
{
  "schema": "sgprobe.matrix-view/v1",
  "matrix": "afirgen-fixture",
  "generated_at": "2025-03-14T09:30:00Z",
  "cells": [
    {"src_role": "nginx", "dst_role": "main-backend", "port": 8000, "expected": "allow", "verdict": "ok",
     "counts": {"ok": 1}, "last_seen": "2025-03-14T09:29:52Z",
     "observations": [{"agent": "nginx-7f3a", "address": "10.0.1.20", "state": "open", "verdict": "ok", "latency_us": 850, "at": "2025-03-14T09:29:52Z"}]},
    {"src_role": "nginx", "dst_role": "main-backend", "port": 3306, "expected": "deny", "verdict": "ok",
     "counts": {"ok": 1}, "last_seen": "2025-03-14T09:29:52Z",
     "observations": [{"agent": "nginx-7f3a", "address": "10.0.1.20", "state": "filtered", "verdict": "ok", "latency_us": 2000000, "at": "2025-03-14T09:29:52Z"}]},
    {"src_role": "nginx", "dst_role": "rds-mysql", "port": 3306, "expected": "deny", "verdict": "violation",
     "counts": {"violation": 1, "ok": 1}, "last_seen": "2025-03-14T09:29:53Z",
     "observations": [
       {"agent": "nginx-7f3a", "address": "10.0.3.10", "state": "open", "verdict": "violation", "latency_us": 1234, "at": "2025-03-14T09:29:53Z"},
       {"agent": "nginx-7f3a", "address": "10.0.3.11", "state": "filtered", "verdict": "ok", "latency_us": 2000000, "at": "2025-03-14T09:29:53Z"}]},
    {"src_role": "nginx", "dst_role": "rds-mysql", "port": 8000, "expected": "deny", "verdict": "inconclusive",
     "counts": {"inconclusive": 1}, "last_seen": "2025-03-14T09:29:53Z",
     "observations": [{"agent": "nginx-7f3a", "address": "10.0.3.10", "state": "error", "verdict": "inconclusive", "latency_us": null, "at": "2025-03-14T09:29:53Z"}]},
    {"src_role": "nginx", "dst_role": "frontend", "port": 80, "expected": "allow", "verdict": "no_listener",
     "counts": {"no_listener": 1}, "last_seen": "2025-03-14T09:29:53Z",
     "observations": [{"agent": "nginx-7f3a", "address": "10.0.1.40", "state": "closed", "verdict": "no_listener", "latency_us": 410, "at": "2025-03-14T09:29:53Z"}]},
    {"src_role": "nginx", "dst_role": "vpc-endpoints", "port": 443, "expected": "allow", "verdict": "tls_failed",
     "counts": {"tls_failed": 1}, "last_seen": "2025-03-14T09:29:54Z",
     "observations": [{"agent": "nginx-7f3a", "address": "10.0.5.5", "state": "open", "verdict": "tls_failed", "latency_us": 15320, "at": "2025-03-14T09:29:54Z"}]},
    {"src_role": "nginx", "dst_role": "efs", "port": 2049, "expected": "allow", "verdict": "blocked",
     "counts": {"blocked": 1}, "last_seen": "2025-03-14T09:29:54Z",
     "observations": [{"agent": "nginx-7f3a", "address": "10.0.4.4", "state": "filtered", "verdict": "blocked", "latency_us": 2000000, "at": "2025-03-14T09:29:54Z"}]},
    {"src_role": "nginx", "dst_role": "internet", "port": 443, "expected": "deny", "verdict": "unverified",
     "counts": {"unverified": 1}, "last_seen": "2025-03-14T09:29:54Z",
     "observations": [{"agent": "nginx-7f3a", "address": "198.18.0.250", "state": "filtered", "verdict": "unverified", "latency_us": 2000000, "at": "2025-03-14T09:29:54Z"}]},
    {"src_role": "main-backend", "dst_role": "main-backend", "port": 8000, "expected": "deny", "verdict": "unobserved",
     "counts": {}, "observations": [], "last_seen": null},
    {"src_role": "main-backend", "dst_role": "main-backend", "port": 3306, "expected": "deny", "verdict": "unobserved",
     "counts": {}, "observations": [], "last_seen": null},
    {"src_role": "main-backend", "dst_role": "rds-mysql", "port": 3306, "expected": "allow", "verdict": "stale",
     "counts": {"ok": 1}, "last_seen": "2025-03-14T09:21:02Z",
     "observations": [{"agent": "main-backend-2c91", "address": "10.0.3.10", "state": "open", "verdict": "ok", "latency_us": 1900, "at": "2025-03-14T09:21:02Z"}]},
    {"src_role": "main-backend", "dst_role": "rds-mysql", "port": 8000, "expected": "deny", "verdict": "stale",
     "counts": {"ok": 1}, "last_seen": "2025-03-14T09:21:02Z",
     "observations": [{"agent": "main-backend-2c91", "address": "10.0.3.10", "state": "filtered", "verdict": "ok", "latency_us": 2000000, "at": "2025-03-14T09:21:02Z"}]},
    {"src_role": "main-backend", "dst_role": "frontend", "port": 80, "expected": "deny", "verdict": "stale",
     "counts": {"ok": 1}, "last_seen": "2025-03-14T09:21:02Z",
     "observations": [{"agent": "main-backend-2c91", "address": "10.0.1.40", "state": "filtered", "verdict": "ok", "latency_us": 2000000, "at": "2025-03-14T09:21:02Z"}]},
    {"src_role": "main-backend", "dst_role": "vpc-endpoints", "port": 443, "expected": "allow", "verdict": "stale",
     "counts": {"ok": 1}, "last_seen": "2025-03-14T09:21:02Z",
     "observations": [{"agent": "main-backend-2c91", "address": "10.0.5.5", "state": "open", "verdict": "ok", "latency_us": 3100, "at": "2025-03-14T09:21:02Z"}]},
    {"src_role": "main-backend", "dst_role": "efs", "port": 2049, "expected": "allow", "verdict": "stale",
     "counts": {"ok": 1}, "last_seen": "2025-03-14T09:21:02Z",
     "observations": [{"agent": "main-backend-2c91", "address": "10.0.4.4", "state": "open", "verdict": "ok", "latency_us": 700, "at": "2025-03-14T09:21:02Z"}]},
    {"src_role": "main-backend", "dst_role": "internet", "port": 443, "expected": "allow", "verdict": "stale",
     "counts": {"ok": 1}, "last_seen": "2025-03-14T09:21:02Z",
     "observations": [{"agent": "main-backend-2c91", "address": "198.18.0.250", "state": "open", "verdict": "ok", "latency_us": 24000, "at": "2025-03-14T09:21:02Z"}]},
    {"src_role": "backup", "dst_role": "main-backend", "port": 8000, "expected": "deny", "verdict": "unobserved",
     "counts": {}, "observations": [], "last_seen": null},
    {"src_role": "backup", "dst_role": "rds-mysql", "port": 3306, "expected": "allow", "verdict": "unobserved",
     "counts": {}, "observations": [], "last_seen": null},
    {"src_role": "backup", "dst_role": "internet", "port": 443, "expected": "allow", "verdict": "unobserved",
     "counts": {}, "observations": [], "last_seen": null},
    {"src_role": "nginx", "dst_role": "<img src=x onerror=alert(1)>redis", "port": 6379, "expected": null, "verdict": "unknown",
     "counts": {"unknown": 1}, "last_seen": "2025-03-14T09:29:55Z",
     "observations": [{"agent": "nginx-7f3a", "address": "10.0.9.9", "state": "open", "verdict": "unknown", "latency_us": 640, "at": "2025-03-14T09:29:55Z"}]}
  ],
  "agents": [
    {"id": "nginx-7f3a", "role": "nginx", "cluster": "afirgen", "az": "eu-west-1a", "address": "10.0.1.10", "state": "live", "last_seen": "2025-03-14T09:29:55Z"},
    {"id": "main-backend-2c91", "role": "main-backend", "cluster": "afirgen", "az": "eu-west-1b", "address": "10.0.1.20", "state": "stale", "last_seen": "2025-03-14T09:21:02Z"}
  ]
}
JSON
	serve_site
	url="http://127.0.0.1:$port/"
	broken_url="http://127.0.0.1:$port/broken/"
	mode=fixture
fi
echo "# dashboard at $url ($mode)"

# ---- what the page should show: the view, fetched as the page fetches it ----
view="$work/view.json"
if python3 - "$url" "$view" <<'PY'; then
import sys, urllib.parse, urllib.request
src = urllib.parse.urljoin(sys.argv[1], "v1/matrix")
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(src, timeout=10) as r:
    open(sys.argv[2], "wb").write(r.read())
PY
	ok "v1/matrix answers beside the page"
else
	not_ok "v1/matrix answers beside the page" "at ${url}"
	done_testing
	exit
fi
# The cell whose details panel is opened through the address: the first violation.
focus=$(python3 -c '
import json, sys, urllib.parse as u
cells = [c for c in json.load(open(sys.argv[1]))["cells"] if c["verdict"] == "violation"]
c = cells[0] if cells else None
print("" if c is None else "/".join(u.quote(str(c[k]), safe="") for k in ("src_role", "dst_role", "port")))' "$view")

# ---- render --------------------------------------------------------------------
# Chromium takes its URL after the flags; the hash needs no server.
chrome --dump-dom "$url" >"$work/dom.html"
check "chromium renders the page (--dump-dom)" test -s "$work/dom.html"
cp "$work/dom.html" "$out/${shot}_dom.html"
rm -f "$out/$shot.png" "$out/${shot}_error.png"
chrome --screenshot="$out/$shot.png" --window-size=1400,900 --hide-scrollbars "$url" >/dev/null
if [ -n "$focus" ]; then
	chrome --dump-dom "${url}#cell=$focus" >"$work/dom_details.html"
	chrome --screenshot="$out/${shot}_details.png" --window-size=1400,900 --hide-scrollbars "${url}#cell=$focus" >/dev/null
fi
chrome --dump-dom "$broken_url" >"$work/dom_broken.html"
chrome --screenshot="$out/${shot}_error.png" --window-size=1400,900 --hide-scrollbars "$broken_url" >/dev/null

# ---- check -----------------------------------------------------------------------
# The checker prints "ok|NAME", "not ok|NAME|WHY" or "skip|NAME|WHY" lines.
python3 - "$work" "$view" "$mode" "$out" "$shot" >"$work/results" 2>"$work/checker.err" <<'PY'
import html.parser, json, os, re, struct, sys, zlib

work, view_path, mode, out, shot = sys.argv[1:6]
view = json.load(open(view_path))
SHORT = {"violation": "VIOL", "blocked": "BLOCK", "tls_failed": "TLS", "no_listener": "NOLSN",
         "inconclusive": "INCON", "unverified": "unver", "ok": "ok", "unobserved": "unobs",
         "stale": "stale", "unknown": "unkn"}
RED = (0xD3, 0x2F, 0x2F)


def report(kind, name, why=""):
    print(f"{kind}|{name}|{why}".rstrip("|"))


def check(name, cond, why=""):
    report("ok" if cond else "not ok", name, "" if cond else why)


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        for c in self.children:
            if not isinstance(c, str):
                yield c
                yield from c.walk()

    def classes(self):
        return (self.attrs.get("class") or "").split()

    def find_id(self, i):
        return next((n for n in self.walk() if n.attrs.get("id") == i), None)


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Builder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(path):
    b = Builder()
    b.feed(open(path, encoding="utf-8", errors="replace").read())
    return b.root


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB/RGBA non-interlaced PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
    bpp = 3 if ctype == 2 else 4
    raw, stride, prev, rows, i = zlib.decompress(idat), w * bpp, bytearray(w * bpp), [], 0
    for _ in range(h):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, rows, bpp


def count_colour(path, rgb):
    w, h, rows, bpp = png_pixels(path)
    want = bytes(rgb)
    return sum(1 for r in rows for x in range(0, w * bpp, bpp) if bytes(r[x:x + 3]) == want)


dom = parse(os.path.join(work, "dom.html"))
cells = view["cells"]
unknown = [c for c in cells if c.get("expected") is None or c["verdict"] == "unknown"]
known = [c for c in cells if c not in unknown]
grid, unknown_table = dom.find_id("grid"), dom.find_id("unknown")


def cell_elements(root):
    return [n for n in (root.walk() if root else []) if "cell" in n.classes()]


def key(x):
    if isinstance(x, Node):
        return (x.attrs.get("data-src"), x.attrs.get("data-dst"), x.attrs.get("data-port"))
    return (x["src_role"], x["dst_role"], str(x["port"]))


grid_cells = {key(n): n for n in cell_elements(grid)}
unknown_cells = {key(n): n for n in cell_elements(unknown_table)}


def shows(n, c):
    """Why the element n does not show the cell c, or ''."""
    v, exp = c["verdict"], c.get("expected") or "none"
    if n is None:
        return "no element"
    if f"verdict-{v}" not in n.classes():
        return f"class {n.attrs.get('class')!r}, want verdict-{v}"
    if n.attrs.get("data-verdict") != v:
        return f"data-verdict {n.attrs.get('data-verdict')!r}"
    if n.attrs.get("data-expected") != exp:
        return f"data-expected {n.attrs.get('data-expected')!r}, want {exp!r}"
    if v not in n.text() and SHORT.get(v, v) not in n.text():
        return f"text {n.text()!r} says neither {v} nor {SHORT.get(v)}"
    if v not in (n.attrs.get("title") or ""):
        return "the title does not name the verdict"
    return ""


def first(verdict, expected=None):
    return next((c for c in known if c["verdict"] == verdict and (expected is None or c["expected"] == expected)), None)


# The page itself: no external resources.
ext = [f"<{n.tag} src>" for n in dom.walk() if n.attrs.get("src")]
ext += [f"<link href={n.attrs.get('href')}>" for n in dom.walk()
        if n.tag == "link" and not (n.attrs.get("href") or "").startswith("data:")]
styles = "".join(n.text() for n in dom.walk() if n.tag == "style")
ext += [m for m in re.findall(r"@import|url\(\s*['\"]?(?!data:)[^)]*\)", styles)]
check("the page is self-contained (no external script, style, font or image)", not ext, ", ".join(ext))

# The summary.
summary = dom.find_id("summary")
check(f"the summary names the matrix ({view['matrix']})",
      summary is not None and view["matrix"] in summary.text(), "summary: %r" % (summary.text() if summary else None))
counts = dom.find_id("counts")
by = {}
for c in cells:
    by[c["verdict"]] = by.get(c["verdict"], 0) + 1
bad = []
for v, n in by.items():
    li = next((x for x in (counts.walk() if counts else []) if x.attrs.get("data-verdict") == v), None)
    if li is None or not re.search(rf"\b{n}\b", li.text()):
        bad.append(f"{v}={n}: {li.text() if li else 'missing'!r}")
check("the summary counts the cells by verdict", not bad, "; ".join(bad))
live = sum(1 for a in view["agents"] if a["state"] == "live")
ac = dom.find_id("agents-count")
act = re.sub(r"\s+", " ", ac.text()) if ac else ""
check(f"the summary counts agents ({live} live, {len(view['agents']) - live} stale)",
      f"{live} live" in act and f"{len(view['agents']) - live} stale" in act, repr(act))
err = dom.find_id("error")
check("no error banner when the collector answers", err is not None and "hidden" in err.attrs, repr(err.text() if err else None))

# The violation cell.
c = first("violation")
if c is None:
    report("not ok", "a violation cell is shown", "the matrix view has no violation cell")
else:
    n = grid_cells.get(key(c))
    why = shows(n, c)
    check(f"the violation cell {key(c)} is class verdict-violation and says so", not why, why)
    check("the violation cell is marked expected deny", n is not None and n.attrs.get("data-expected") == "deny",
          repr(n.attrs.get("data-expected") if n else None))

# Its colour: the stylesheet maps .verdict-violation to red ...
rules = re.findall(r"([^{}]+)\{([^}]*)\}", re.sub(r"/\*.*?\*/", "", styles, flags=re.S))
red = [s for s, body in rules
       if any(re.search(r"\.verdict-violation$", x.strip()) for x in s.split(","))
       and re.search(r"background(-color)?\s*:\s*#d32f2f\b", body, re.I)]
check("the stylesheet colours .verdict-violation #d32f2f", bool(red))
nocolour = [v for v in SHORT if not any(
    any(re.search(rf"\.verdict-{v}$", x.strip()) for x in s.split(",")) and re.search(r"background", b)
    for s, b in rules)]
check("the stylesheet colours every verdict", not nocolour, "no background for " + ", ".join(nocolour))

# ... and the browser painted it: the page without data (error run) has the
# legend's swatch; the page with data has the cell too.
png = os.path.join(out, shot + ".png")
size = os.path.getsize(png) if os.path.exists(png) else 0
try:
    w, h = struct.unpack(">II", open(png, "rb").read()[16:24]) if size else (0, 0)
except struct.error:
    w, h = 0, 0
check(f"the screenshot is kept in tests/out/{shot}.png (a PNG over 10 kB)",
      size > 10240 and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n", f"{size} bytes")
check("the screenshot is 1400x900", (w, h) == (1400, 900), f"{w}x{h}")
base = os.path.join(out, shot + "_error.png")
if size and os.path.exists(base):
    try:
        with_cells, without = count_colour(png, RED), count_colour(base, RED)
        check(f"the screenshot shows the violation in red ({with_cells - without} more #d32f2f pixels than without data)",
              with_cells - without >= 400, f"{with_cells} red pixels with the data, {without} without")
    except (ValueError, TypeError, zlib.error) as e:
        report("not ok", "the screenshot shows the violation in red", str(e))
else:
    report("not ok", "the screenshot shows the violation in red", f"no {shot}.png or {shot}_error.png to compare")

# Every cell of the grid.
c = first("ok", "allow")
if c is None:
    report("not ok", "an ok allow cell is shown", "the matrix view has no ok allow cell")
else:
    why = shows(grid_cells.get(key(c)), c)
    check(f"the ok allow cell {key(c)} is verdict-ok, marked allow", not why, why)
for verdict, expected in (("unverified", "deny"), ("unobserved", None), ("stale", None)):
    c = first(verdict, expected)
    name = f"an {verdict} cell" if verdict[0] in "aeiou" else f"a {verdict} cell"
    if c is None:
        report("not ok" if mode == "fixture" else "skip", name + " is shown", "none in the matrix view")
    else:
        why = shows(grid_cells.get(key(c)), c)
        check(f"{name} {key(c)} is shown as {verdict}", not why, why)
bad = [f"{key(c)}: {shows(grid_cells.get(key(c)), c)}" for c in known if shows(grid_cells.get(key(c)), c)]
check(f"every one of the {len(known)} cells is in the grid with its verdict", not bad, "; ".join(bad[:5]))
check("the grid holds no other cell", len(grid_cells) == len(known), f"{len(grid_cells)} cells in the grid")
thead = next((n for n in (grid.walk() if grid else []) if n.tag == "thead"), None)
rows = [n for n in (thead.walk() if thead else []) if n.tag == "tr"]
dst_heads = [n.text() for n in (rows[0].walk() if rows else []) if "dst" in n.classes()]
want = list(dict.fromkeys(c["dst_role"] for c in known))
check("the grid's header groups the ports by destination role", len(rows) == 2 and sorted(dst_heads) == sorted(want),
      f"{len(rows)} header rows, groups {dst_heads}, want {want}")
srcs = [n.text() for n in (grid.walk() if grid else []) if "src" in n.classes()]
want = list(dict.fromkeys(c["src_role"] for c in known))
check("the grid has one row per source role", srcs == want, f"{srcs}, want {want}")

# Unknown cells: their own table.
if not unknown:
    report("not ok" if mode == "fixture" else "skip", "the unknown cell is shown", "none in the matrix view")
for c in unknown:
    why = shows(unknown_cells.get(key(c)), c)
    check(f"the unknown cell {key(c)} is in the unknown cells' table", not why, why)
check("unknown cells are not in the grid", not any(key(c) in grid_cells for c in unknown))
# Role names are text, never markup.
imgs = [n for n in dom.walk() if n.tag == "img"]
check("data is shown as text, never markup (no <img> from a role name)", not imgs, f"{len(imgs)} img elements")

# Agents.
agents = dom.find_id("agents")
arows = {n.attrs.get("data-agent"): n for n in (agents.walk() if agents else []) if n.tag == "tr" and "data-agent" in n.attrs}
for a in view["agents"]:
    r = arows.get(a["id"])
    t = r.text() if r else ""
    check(f"the agents table lists {a['id']} ({a['role']}, {a['state']})",
          r is not None and a["id"] in t and a["role"] in t and a["state"] in t, repr(t))

# The details panel of the violation cell, opened through the address.
p = os.path.join(work, "dom_details.html")
c = first("violation")
if c is not None and os.path.exists(p):
    d = parse(p)
    panel = d.find_id("details")
    t = panel.text() if panel else ""
    obs = c.get("observations") or []
    miss = [o["address"] for o in obs if o["address"] not in t or o["agent"] not in t or o["state"] not in t]
    lat = [o for o in obs if isinstance(o.get("latency_us"), (int, float))]
    ms = [f"{o['latency_us'] / 1000:.2f}" if o["latency_us"] < 10000 else f"{o['latency_us'] / 1000:.1f}" for o in lat]
    check("the details panel shows the violation cell's observations (agent, address, state)",
          panel is not None and "hidden" not in panel.attrs and obs and not miss,
          f"panel {'missing' if panel is None else 'hidden' if 'hidden' in panel.attrs else 'shown'}; missing {miss}")
    check("the details panel gives latencies in ms", all(m + " ms" in t for m in ms), f"want {ms} in {t!r}")
    sel = [n for n in d.walk() if "selected" in n.classes() and "cell" in n.classes()]
    check("the selected cell is highlighted", len(sel) == 1 and key(sel[0]) == key(c), f"{len(sel)} selected")
else:
    report("skip", "the details panel", "no violation cell")

# The error banner, when v1/matrix cannot be had.
p = os.path.join(work, "dom_broken.html")
if os.path.exists(p):
    b = parse(p).find_id("error")
    t = b.text() if b else ""
    check("a failed fetch shows the error banner (cannot reach the collector: HTTP 404)",
          b is not None and "hidden" not in b.attrs and t.startswith("cannot reach the collector:") and "404" in t, repr(t))
else:
    report("not ok", "a failed fetch shows the error banner", "no page without data was rendered")
PY
checker_rc=$?
while IFS='|' read -r kind name why; do
	case $kind in
	ok) ok "$name" ;;
	skip) ok "$name # SKIP $why" ;;
	*) not_ok "$name" "$why" ;;
	esac
done <"$work/results"
if [ "$checker_rc" -ne 0 ]; then
	not_ok "the DOM checker ran to its end" "$(tail -n 5 "$work/checker.err")"
fi
done_testing
