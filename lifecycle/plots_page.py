"""`dvc plots show` offline: a page template with vega, vega-lite and vega-embed inside it.

DVC's page loads those three scripts from a CDN, so on an air-gapped machine
its vega plots (accuracy, loss, the confusion matrix) are drawn blank without a
word. Set-up installs them from the npm registry (``npm install``, into
``.venv/vega``) and writes a template that carries them inline, and points this
checkout's DVC at it (``dvc config --local plots.html_template``, in the
untracked ``.dvc/config.local``): after that, ``dvc plots show`` writes a page
that draws everything with no network at all. Without npm nothing changes and
DVC's own page (with its CDN) stands.

    python -m lifecycle.plots_page        # what set-up runs; again to repair
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from mnistflow import atomic
from mnistflow.entry import run_main
from mnistflow.errors import MnistflowError

# The majors DVC's own page loads (dvc_render.vega: vega@5, vega-lite@5, vega-embed@6).
PACKAGES = {"vega": "5", "vega-lite": "5", "vega-embed": "6"}
SCRIPTS = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js")
ROOT = Path(".venv/vega")

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def template(root: Path) -> str:
    """The page, DVC's own but for the scripts: inline instead of from a CDN (and no
    ``{scripts}`` placeholder, so DVC adds no CDN tag of its own)."""
    inline = []
    for script in SCRIPTS:
        code = (root / "node_modules" / script).read_text(encoding="utf-8")
        inline.append(f"    <script>{code.replace('</script', '<' + chr(92) + '/script')}</script>")
    return PAGE.format(scripts="\n".join(inline))


def install(root: Path = ROOT, dvc_dir: Path = Path(".dvc")) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise MnistflowError("npm not found: `dvc plots show` keeps loading vega from its CDN "
                             "(install npm, e.g. `apt-get install npm`, and run python -m lifecycle.plots_page)")
    specs = [f"{name}@{major}" for name, major in PACKAGES.items()]
    done = subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(root), *specs],
                          capture_output=True, text=True)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise MnistflowError(f"npm install {' '.join(specs)} failed: {said[-1] if said else done.returncode}")
    page = root / "plots-template.html"
    atomic.write_text(page, template(root))
    dvc = Path(sys.executable).with_name("dvc")
    subprocess.run([str(dvc), "config", "--local", "plots.html_template", str(page.resolve())],
                   check=True, capture_output=True, cwd=dvc_dir.parent)
    return page


def main() -> None:
    run_main(lambda: print(f"dvc plots show: vega inline from {install()}"))


if __name__ == "__main__":
    main()
