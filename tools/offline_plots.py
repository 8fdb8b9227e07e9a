"""`make plots`: `dvc plots show` / `dvc plots diff` as one self-contained HTML page that works offline.

DVC's page loads vega from a CDN, so it is blank without internet. This builds an HTML template with
vega, vega-lite and vega-embed inlined (installed from the npm registry into build/vega on first use,
never committed) and hands it to DVC. `--install` (run by `make setup`) also makes it DVC's default
(`plots.html_template` in .dvc/config.local), so a plain `dvc plots show` / `dvc plots diff` draws offline.
`--screenshot FILE` then renders the page in headless Chromium (Debian's `chromium` package) to check that
the plots really draw.

    python tools/offline_plots.py [--install] [--screenshot shot.png] [-- REV ...]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = {"vega": "5", "vega-lite": "5", "vega-embed": "6"}
BUILD = Path("build/vega")
TEMPLATE = Path("build/plots_template.html")


def vega_scripts(build: Path = BUILD) -> list[Path]:
    files = [build / "node_modules" / name / "build" / f"{name}.min.js" for name in PACKAGES]
    if not all(f.exists() for f in files):
        if shutil.which("npm") is None:
            raise SystemExit("offline plots need npm (Node.js) to install vega once: apt-get install npm")
        build.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(build),
                        *[f"{n}@{v}" for n, v in PACKAGES.items()]], check=True)
    return files


def template(scripts: list[Path]) -> str:
    inline = "\n".join(f"<script>{f.read_text(encoding='utf-8')}</script>" for f in scripts)
    return f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>emotion-classifier plots</title>
{inline}
<style>body {{ font-family: sans-serif; }} table {{ border-spacing: 15px; }} img {{ max-width: 1100px; }}</style>
</head>
<body>
<h1>emotion-classifier plots</h1>
{{plot_divs}}
</body>
</html>
"""


def screenshot(page: Path, out: Path, height: int = 9000) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("--screenshot needs Debian's chromium: apt-get install -y chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--virtual-time-budget=15000", f"--window-size=1400,{height}",
             f"--user-data-dir={Path('build/chromium-profile').resolve()}", f"--screenshot={out.resolve()}"]
    subprocess.run([browser, *flags, page.resolve().as_uri()], check=True, capture_output=True, timeout=180)


def write_template() -> Path:
    TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
    TEMPLATE.write_text(template(vega_scripts()), encoding="utf-8")
    return TEMPLATE


def install() -> None:
    """The offline template as DVC's default for this clone (DVC reads the path relative to .dvc/)."""
    write_template()
    subprocess.run([sys.executable, "-m", "dvc", "config", "--local", "plots.html_template",
                    f"../{TEMPLATE.as_posix()}"], check=True)
    print(f"dvc plots show/diff now draw offline ({TEMPLATE}, plots.html_template in .dvc/config.local)")


def rendered_charts(page: Path) -> int:
    """How many vega charts headless Chromium draws on the page (each leaves a `marks` canvas)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("needs Debian's chromium: apt-get install -y chromium")
    r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--virtual-time-budget=15000",
                        f"--user-data-dir={Path('build/chromium-profile').resolve()}", "--dump-dom",
                        page.resolve().as_uri()], capture_output=True, text=True, check=True, timeout=180)
    return r.stdout.count('class="marks"')


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="dvc_plots", help="output directory (index.html inside)")
    ap.add_argument("--screenshot", help="also render the page to this PNG with headless Chromium")
    ap.add_argument("--install", action="store_true", help="only make the offline template DVC's default")
    ap.add_argument("revs", nargs="*", help="revisions or experiments: runs `dvc plots diff REV...`")
    args = ap.parse_args(argv)
    if args.install:
        return install()
    tmpl = write_template()
    cmd = ["plots", "diff", *args.revs] if args.revs else ["plots", "show"]
    subprocess.run([sys.executable, "-m", "dvc", *cmd, "--html-template", str(tmpl), "-o", args.out], check=True)
    page = Path(args.out) / "index.html"
    print(f"offline plots: {page}")
    if args.screenshot:
        screenshot(page, Path(args.screenshot))
        print(f"screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
