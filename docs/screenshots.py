"""Screenshots of the built documentation in a headless browser, to look at what users see.

Builds the HTML (quick: the gallery is not executed) or takes an already-built folder, serves
it on localhost and saves one PNG per page and window width::

    python docs/screenshots.py                          # build, shoot into docs/_build/screenshots
    python docs/screenshots.py --html docs/_build/html  # shoot an existing build
    python docs/screenshots.py --widths 1440 --pages index.html benchmarks.html

Pages default to the landing page, the page of ``sitransport.fit``, a guide page and the
benchmarks page, at 1440 and 1920 pixels wide. Needs Chromium (Debian:
``apt-get install chromium``; ``--browser`` names another binary). Nothing is fetched from the
network: the browser only loads the local server's pages.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PAGES = (
    "index.html",
    "api/generated/sitransport.fit.html",
    "guide/settings.html",
    "benchmarks.html",
)
WIDTHS = (1440, 1920)
HEIGHT = 2400
BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",
)


def build(out: Path, full: bool) -> Path:
    """``sphinx-build -W`` into ``out`` (the gallery executed only with ``full``)."""
    cmd = [sys.executable, "-m", "sphinx", "-q", "-W", "-b", "html", str(DOCS), str(out)]
    if not full:
        cmd[5:5] = ["-D", "plot_gallery=0"]
    subprocess.run(cmd, check=True)
    return out


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    """A local HTTP server of ``folder`` on a free port, in a daemon thread."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base's name)
        pass


def shoot(browser: str, url: str, png: Path, width: int, height: int) -> None:
    """One screenshot of ``url`` at ``width`` x ``height``."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            browser,
            *BROWSER_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            url,
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    if not png.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot of {url}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--html", type=Path, help="an already-built HTML folder (default: build)")
    p.add_argument("--build-dir", type=Path, default=DOCS / "_build" / "html")
    p.add_argument("--full", action="store_true", help="build with the gallery executed")
    p.add_argument("--out", type=Path, default=DOCS / "_build" / "screenshots")
    p.add_argument("--pages", nargs="+", default=list(PAGES))
    p.add_argument("--widths", nargs="+", type=int, default=list(WIDTHS))
    p.add_argument("--height", type=int, default=HEIGHT)
    p.add_argument("--browser", default=None, help="chromium binary (default: from PATH)")
    args = p.parse_args(argv)
    browser = args.browser or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
        None,
    )
    if browser is None:
        p.error("no chromium on PATH: apt-get install chromium, or pass --browser")
    html = args.html or build(args.build_dir, args.full)
    missing = [page for page in args.pages if not (html / page).is_file()]
    if missing:
        p.error(f"not in {html}: {', '.join(missing)}")
    args.out.mkdir(parents=True, exist_ok=True)
    server, port = serve(html)
    try:
        for page in args.pages:
            for width in args.widths:
                name = page.removesuffix(".html").replace("/", "_")
                png = args.out / f"{name}_{width}.png"
                shoot(browser, f"http://127.0.0.1:{port}/{page}", png, width, args.height)
                print(png)
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
