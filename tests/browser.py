"""GitHub's rendering, as near as a test can get: the Markdown through cmark-gfm (the C library GitHub's Markdown
is built on, with its extensions: tables, autolinks, strikethrough, the tag filter), the HTML styled like a
GitHub comment (tests/fixtures/render/github-like.css) and laid out by a real headless Chromium in an 800 px
window, every <details> opened; then what overflows the comment box.

Both are Debian packages (.ci/setup.sh installs them): cmark-gfm and chromium. Chromium runs with the flags this
machine needs (no sandbox as root, no background networking: the network is closed) and a fresh profile.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, List

CSS = Path(__file__).resolve().parent / "fixtures" / "render" / "github-like.css"
WINDOW = 800  # px: the viewport the issue asks about; the comment box is 780 px wide inside it
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--mute-audio", "--hide-scrollbars", "--virtual-time-budget=5000"]

# Runs in the page: opens every <details>, then reports every element that sticks out of the comment box, and every
# table or pre block that needs to scroll sideways inside it (GitHub lets those scroll; for the report that is
# overflow all the same). A Mermaid block is left out: GitHub draws it as a chart that fits the column.
MEASURE = """
document.querySelectorAll('details').forEach(d => d.open = true);
const box = document.querySelector('.comment').getBoundingClientRect();
const out = {window: window.innerWidth, page: document.documentElement.scrollWidth, box: box.width,
             sticking_out: [], scrolling: [], tables: document.querySelectorAll('table').length,
             details: document.querySelectorAll('details').length};
const mermaid = e => e.closest('pre') && e.closest('pre').querySelector('code.language-mermaid');
document.querySelectorAll('.markdown-body *').forEach(e => {
  if (mermaid(e) || (e.closest('pre') && e.tagName !== 'PRE')) return;
  const r = e.getBoundingClientRect();
  if (r.width > 0 && r.right > box.right + 0.5)
    out.sticking_out.push({tag: e.tagName, right: r.right, text: e.textContent.slice(0, 80)});
  if ((e.tagName === 'TABLE' || e.tagName === 'PRE') && e.scrollWidth > e.clientWidth + 1)
    out.scrolling.push({tag: e.tagName, scroll: e.scrollWidth, client: e.clientWidth,
                        text: e.textContent.slice(0, 80)});
});
document.getElementById('measure').textContent = JSON.stringify(out);
"""


class RenderError(Exception):
    pass


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise RenderError(f"{name} is not installed (Debian package {name}; .ci/setup.sh installs it)")
    return found


def to_html(markdown: str) -> str:
    """cmark-gfm with GitHub's extensions; raw HTML kept (GitHub allows <details>, <sub>, <br>), the tag filter
    on."""
    proc = subprocess.run([tool("cmark-gfm"), "--unsafe", "-e", "table", "-e", "strikethrough", "-e", "autolink",
                           "-e", "tagfilter"], input=markdown, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RenderError(f"cmark-gfm failed: {proc.stderr}")
    return proc.stdout


def page(body: str) -> str:
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><style>" + CSS.read_text(encoding="utf-8")
            + "</style></head><body><div class='comment'><div class='markdown-body'>" + body
            + "</div></div><pre id='measure' style='display:none'></pre><script>" + MEASURE
            + "</script></body></html>")


def measure(markdown: str) -> Dict[str, Any]:
    """Lay the Markdown out at WINDOW px and say what overflows (see MEASURE)."""
    with tempfile.TemporaryDirectory(prefix="pgmc-render-") as tmp:
        doc = Path(tmp) / "comment.html"
        doc.write_text(page(to_html(markdown)), encoding="utf-8")
        proc = subprocess.run([tool("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile",
                               f"--window-size={WINDOW},2000", "--dump-dom", doc.as_uri()],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    found = re.search(r"<pre id=\"measure\"[^>]*>(.*?)</pre>", proc.stdout, re.DOTALL)
    if proc.returncode != 0 or not found or not found.group(1):
        raise RenderError(f"chromium did not lay the page out (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(html.unescape(found.group(1)))


def overflow(result: Dict[str, Any]) -> List[str]:
    """What overflows, one line each; [] when the comment fits."""
    problems = [f"{e['tag']} sticks out to {e['right']:.0f} px: {e['text']!r}" for e in result["sticking_out"]]
    problems += [f"{e['tag']} scrolls ({e['scroll']} px in {e['client']} px): {e['text']!r}"
                 for e in result["scrolling"]]
    if result["page"] > result["window"]:
        problems.append(f"the page is {result['page']} px wide in a {result['window']} px window")
    return problems
