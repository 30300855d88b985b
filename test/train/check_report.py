#!/usr/bin/env python3
"""test/train/check_report.py — kd's chart and report pages, checked with Python's standard library only.

    check_report.py markup KD          chart.svg parses as XML; report.html (kd distill) and the page of
                                       kd compare --report parse as HTML with every tag closed, every inline
                                       SVG parses as XML, nothing is fetched (no script, link, img or src,
                                       no external href); the label names and the output directory, full of
                                       < & " ', come back as text (escaped); the sections, the flags and the
                                       teacher-cache pass's progress line are there.
    check_report.py render KD OUT.png  report.html rendered by headless Chromium (Debian's `chromium`;
                                       exit 77 without it) to OUT.png: loaded with no console message (the
                                       page's policy makes any fetch one), the DOM whole, and the PNG not
                                       blank; chart.svg alone renders too.

A small run on a made-up set: kd finetune a tiny teacher, kd distill a student with --cache-teacher and a
transfer file, kd compare --report. Prints what it checked; exits 1 on any mismatch.
"""
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import urllib.parse
import xml.etree.ElementTree as ET
import zlib

FAILED = []

# Label names and a directory name that break a page unless escaped.
LABELS = ["<b>pos</b>", "neg & \"bad\" 'x'"]
ODD_DIR = "st<u>&\"d'x"


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        FAILED.append(what)


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def tiny_runs(kd, tmp):
    """The teacher, a distilled student in ODD_DIR, and a compare page; returns distill's stderr."""
    with open(os.path.join(tmp, "vocab.txt"), "w") as f:
        f.write("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ngood\nbad\nfilm\nthe\nwas\nis\ngreat\nawful\n")
    for split in ("train", "dev"):
        with open(os.path.join(tmp, split + ".jsonl"), "w") as f:
            for _ in range(16):
                f.write(json.dumps({"text": "the film was good", "label": LABELS[0]}) + "\n")
                f.write(json.dumps({"text": "the film is awful", "label": LABELS[1]}) + "\n")
    with open(os.path.join(tmp, "more.txt"), "w") as f:
        f.write("the film is great\ngreat great film\nbad bad film\n")
    common = ["--data", tmp, "--batch-size", "8", "--max-len", "16", "--lr", "1e-3", "--threads", "1"]
    r = run([kd, "finetune", "--model", "bert-tiny", "--vocab", os.path.join(tmp, "vocab.txt"), "--out",
             os.path.join(tmp, "teacher"), "--epochs", "1", "--quiet"] + common)
    check(r.returncode == 0, "kd finetune on the tiny set" + ("" if r.returncode == 0 else ": " + r.stderr))
    student = os.path.join(tmp, ODD_DIR)
    r = run([kd, "distill", "--teacher", os.path.join(tmp, "teacher"), "--student", "bert-tiny", "--out", student,
             "--epochs", "2", "--cache-teacher", "--transfer", os.path.join(tmp, "more.txt"), "--log-every", "1"]
            + common)
    check(r.returncode == 0, "kd distill --cache-teacher into %r" % ODD_DIR + ("" if r.returncode == 0 else ": " + r.stderr))
    r2 = run([kd, "compare", "--teacher", os.path.join(tmp, "teacher"), "--student", student, "--data",
              os.path.join(tmp, "dev.jsonl"), "--threads", "1", "--latency-samples", "4", "--report",
              os.path.join(tmp, "compare.html")])
    check(r2.returncode == 0, "kd compare --report" + ("" if r2.returncode == 0 else ": " + r2.stderr))
    return student, r.stderr


VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


class StrictPage(html.parser.HTMLParser):
    """Every element closed in order; the tags, attributes and text kept for the checks."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags, self.text, self.attrs = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v or "") for k, v in attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v or "") for k, v in attrs)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("</%s> closes <%s> at line %d" % (tag, self.stack[-1] if self.stack else "nothing",
                                                                 self.getpos()[0]))
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_page(path, what):
    """Parse the page strictly; return (parser, joined text, raw) for further checks."""
    raw = open(path, encoding="utf-8").read()
    check(raw.startswith("<!DOCTYPE html>"), what + ": starts with <!DOCTYPE html>")
    p = StrictPage()
    p.feed(raw)
    p.close()
    check(not p.errors and not p.stack, what + ": every element closed in order" +
          ("" if not p.errors and not p.stack else ": %s, open at the end: %s" % (p.errors[:3], p.stack)))
    bad_tags = sorted({t for t in p.tags if t in ("script", "link", "img", "iframe", "object", "embed")})
    check(not bad_tags, what + ": no script, link, img, iframe, object or embed (%s)" % bad_tags)
    srcs = [(t, k, v) for t, k, v in p.attrs if k == "src"]
    check(not srcs, what + ": no src attribute (%s)" % srcs[:3])
    ext = [v for t, k, v in p.attrs if k == "href" and re.match(r"^\s*([a-z]+:|//)", v, re.I)]
    check(not ext, what + ": links only to files beside the page (%s)" % ext[:3])
    check("url(" not in raw and "@import" not in raw, what + ": the CSS fetches nothing")
    check("Content-Security-Policy" in raw and "default-src &#39;none&#39;" in raw,
          what + ": the page's policy forbids fetching")
    svgs = re.findall(r"<svg\b.*?</svg>", raw, re.S)
    ok = bool(svgs)
    for s in svgs:
        try:
            ET.fromstring(s)
        except ET.ParseError as e:
            ok = False
            print("      inline SVG does not parse: %s" % e)
    check(ok, what + ": %d inline SVG(s), each parses as XML" % len(svgs))
    return p, "".join(p.text), raw, svgs


def markup(kd):
    tmp = tempfile.mkdtemp(prefix="kd_report_")
    try:
        student, err = tiny_runs(kd, tmp)
        # The teacher-cache pass, not on a terminal: its plain last line (32 labelled + 3 transfer texts).
        m = re.search(r"^teacher logits (\d+)/(\d+)  [0-9.]+ examples/s  in \d+s$", err, re.M)
        check(m is not None and m.group(1) == m.group(2) == "35",
              "the teacher-cache pass printed 'teacher logits 35/35  R examples/s  in Ts' (%s)" %
              (m.group(0) if m else err.strip().splitlines()[:4]))
        check("\r" not in err and "\033" not in err, "no terminal codes when stderr is not a terminal")

        chart = os.path.join(student, "chart.svg")
        try:
            root = ET.parse(chart).getroot()
            check(root.tag == "{http://www.w3.org/2000/svg}svg", "chart.svg parses as XML, an <svg> root")
            text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
            for want in ("loss per step", "EMA, span", "soft (T^2 KL), EMA", "hard (CE), EMA", "student dev accuracy",
                         "teacher dev accuracy", "learning rate", "epoch 1", "epoch 2", "optimizer step", ODD_DIR):
                check(want in text, "chart.svg shows %r" % want)
            paths = root.findall("{http://www.w3.org/2000/svg}path")
            check(len(paths) > 10, "chart.svg has its curves and grid (%d paths)" % len(paths))
        except ET.ParseError as e:
            check(False, "chart.svg parses as XML: %s" % e)

        report = os.path.join(student, "report.html")
        p, text, raw, svgs = check_page(report, "report.html")
        for want in ("Training", "Per epoch", "Dev confusion matrix", "Data", "Models", "Command", "Files",
                     "teacher dev accuracy", "precision", "recall", "F1", "wall time", "examples/s",
                     "transfer set", "model.safetensors", "chart.svg", "last", "best"):
            check(want in text, "report.html shows %r" % want)
        for name in LABELS + [ODD_DIR]:
            check(name in text, "report.html shows %r as text" % name)
        check("<b>pos</b>" not in raw and "st<u>" not in raw, "report.html escapes them (no raw markup)")
        check(not any(t == "b" or t == "u" for t in p.tags), "no <b> or <u> element made from user text")
        check("--cache-teacher" in text and re.search(r"--cache-teacher\s*on\s*given", text) is not None,
              "the flag table lists --cache-teacher: on, given")
        check(re.search(r"--temperature\s*2\s*default", text) is not None, "the flag table lists --temperature: 2, default")
        check(("kd distill --teacher %s" % os.path.join(tmp, "teacher")) in text, "the command line is shown")
        rows = re.findall(r"<tr><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>", raw)
        check([r[0] for r in rows] == ["1", "2"], "the per-epoch table has epochs 1 and 2 (%s)" % rows)
        check(len(svgs) == 1 and "EMA, span" in svgs[0], "the chart is inline")

        cmp_path = os.path.join(tmp, "compare.html")
        p, text, raw, svgs = check_page(cmp_path, "compare.html")
        for want in ("accuracy against latency", "accuracy against size", "Confusion matrix: teacher",
                     "Confusion matrix: student", "speed-up", "share of the teacher", "parameters", "--report"):
            check(want in text, "compare.html shows %r" % want)
        check(len(svgs) == 2, "compare.html has the two scatter plots (%d)" % len(svgs))
        check(ODD_DIR in text and "st<u>" not in raw, "compare.html escapes the student's directory")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def png_pixels(path):
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA PNG, decoded here."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, w = 8, [], 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError("PNG type %d depth %d interlace %d" % (ctype, depth, interlace))
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        rows.append(bytes(line) if bpp == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3))
    return w, h, rows


def screenshot(browser, url, png, size, profile):
    return run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
                "--v=0", "--user-data-dir=" + profile, "--window-size=%d,%d" % size, "--screenshot=" + png, url],
               timeout=120)


def check_png(png, size, what):
    try:
        w, h, rows = png_pixels(png)
    except (OSError, ValueError, zlib.error) as e:
        check(False, "%s: a PNG: %s" % (what, e))
        return
    check((w, h) == size, "%s: %dx%d pixels" % (what, w, h))
    ink, colors = 0, set()
    for y in range(0, h, 2):
        r = rows[y]
        for x in range(0, w * 3, 6):
            px = r[x:x + 3]
            colors.add(px)
            if min(px) < 200:
                ink += 1
    share = ink / ((h + 1) // 2 * ((w + 1) // 2))
    check(share > 0.01, "%s: not blank (%.1f%% of the pixels inked)" % (what, 100 * share))
    check(len(colors) >= 16, "%s: more than a flat fill (%d colours)" % (what, len(colors)))
    top = rows[:60]
    check(any(min(r[x:x + 3]) < 100 for r in top for x in range(0, w * 3, 3)), "%s: the top shows dark text" % what)


def render(kd, png):
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if not browser:
        print("SKIP: no chromium (apt-get install chromium)")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="kd_render_")
    try:
        student, _ = tiny_runs(kd, tmp)
        report = os.path.join(student, "report.html")
        url = "file://" + urllib.parse.quote(report)
        size = (1100, 2200)
        r = screenshot(browser, url, png, size, os.path.join(tmp, "profile"))
        check(r.returncode == 0 and os.path.exists(png), "%s rendered report.html to %s" % (browser, png) +
              ("" if r.returncode == 0 else ": exit %d %s" % (r.returncode, r.stderr[-400:])))
        console = [l for l in r.stderr.splitlines() if ":CONSOLE" in l]
        check(not console, "loaded with no console message (a blocked fetch or an error would be one): %s" % console[:3])
        d = run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + os.path.join(tmp, "profile"),
                 "--dump-dom", url], timeout=120)
        check(d.returncode == 0 and "</html>" in d.stdout and "Per epoch" in d.stdout and "Dev confusion matrix" in d.stdout
              and d.stdout.count("<svg") == 1, "the DOM after loading holds the whole page")
        check_png(png, size, "report.html")
        chart_png = os.path.splitext(png)[0] + "_chart.png"
        r = screenshot(browser, "file://" + urllib.parse.quote(os.path.join(student, "chart.svg")), chart_png, (800, 500),
                       os.path.join(tmp, "profile"))
        check(r.returncode == 0 and not [l for l in r.stderr.splitlines() if ":CONSOLE" in l],
              "chart.svg alone renders with no console message")
        check_png(chart_png, (800, 500), "chart.svg")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("markup", "render") or (sys.argv[1] == "render" and len(sys.argv) < 4):
        print(__doc__)
        return 2
    if sys.argv[1] == "markup":
        markup(sys.argv[2])
    else:
        render(sys.argv[2], os.path.abspath(sys.argv[3]))
    print("check_report %s: %s" % (sys.argv[1], "%d failed" % len(FAILED) if FAILED else "all passed"))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
