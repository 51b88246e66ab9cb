"""``python -m course_lib <command>``: doctor, api, notebooks, readme, freeze.

``doctor`` is for learners; the rest are maintainer commands that ``course.py`` forwards to.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from course_lib import _notebooks
from course_lib.chapters import CHAPTERS


def load_all_chapters() -> None:
    """Import every module of every chapter, so the export registry holds the whole public API.

    Chapters load their widget and kernel modules lazily (:mod:`course_lib._lazy`), so importing
    the packages is not enough: every submodule is imported. ``train`` scripts are skipped (they
    are entry points), and so are Triton kernel modules where the triton package is missing.
    """
    import pkgutil

    from course_lib.runtime import triton_available

    for chapter in CHAPTERS:
        package = importlib.import_module(chapter.module)
        for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=f"{chapter.module}."):
            if info.name.endswith(".train") or (info.name.endswith("_triton") and not triton_available()):
                continue
            importlib.import_module(info.name)


def api_table() -> str:
    """The public API as a markdown table, from the :mod:`course_lib.api` registry."""
    from course_lib.api import registry

    load_all_chapters()
    rows = ["| name | kind | summary |", "| --- | --- | --- |"]
    for name, obj in registry().items():
        kind = "class" if isinstance(obj, type) else "function"
        summary = (obj.__doc__ or "").strip().splitlines()[0].replace("|", r"\|") if obj.__doc__ else ""
        rows.append(f"| `course_lib.{name}` | {kind} | {summary} |")
    return "\n".join(rows)


def chapter_table() -> str:
    """The README's chapter table, from :data:`course_lib.chapters.CHAPTERS`."""
    rows = ["| # | chapter | notebook | `course_lib` module | widget | launch | GPU |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for c in CHAPTERS:
        rows.append(f"| {c.number} | {c.title} | [`{c.notebook}`](notebooks/{c.notebook}.ipynb) | "
                    f"`{c.module}` | {c.widget} | {_notebooks.launch_links(c.notebook)} | {c.gpu} |")
    return "\n".join(rows)


def refresh_readme(check: bool = False) -> bool:
    """Rewrite the generated blocks of README.md; with ``check``, only report whether stale.

    The gallery's pictures are drawn by :func:`course_lib._gallery.write_pictures` (the
    ``readme`` command does both); this checks and writes the README's text only.
    """
    from course_lib._gallery import gallery_markdown

    path = _notebooks.ROOT / "README.md"
    text = original = path.read_text()
    for tag, body in (("chapters", chapter_table()), ("gallery", gallery_markdown()), ("api", api_table())):
        begin, end = f"<!-- begin:{tag} -->", f"<!-- end:{tag} -->"
        if begin not in text:
            raise ValueError(f"README.md must contain the markers {begin} ... {end}")
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = f"{head}{begin}\n{body}\n{end}{tail}"
    if not check and text != original:
        path.write_text(text)
    return text == original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="what this machine is and what the course will do on it")
    sub.add_parser("api", help="print the public API table")
    nbs = sub.add_parser("notebooks", help="rebuild .ipynb from .py and execute them")
    nbs.add_argument("names", nargs="*", help="e.g. 01_autograd (default: all)")
    sub.add_parser("readme", help="refresh README.md's generated tables and its widget gallery")
    sub.add_parser("freeze", help="write the installed versions to constraints.txt")
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from course_lib.doctor import report

        print(report())
    elif args.command == "api":
        print(api_table())
    elif args.command == "notebooks":
        from tqdm.auto import tqdm

        names = args.names or sorted(p.stem for p in _notebooks.NOTEBOOKS.glob("[0-9][0-9]_*.py"))
        for name in (bar := tqdm(names, unit="notebook")):
            bar.set_description(name)
            seconds = _notebooks.build(_notebooks.NOTEBOOKS / f"{name.removesuffix('.py')}.py")
            bar.write(f"{name}: executed in {seconds:.0f} s")
    elif args.command == "readme":
        from course_lib._gallery import write_pictures

        changed = write_pictures()
        print(f"gallery: {', '.join(changed)} redrawn" if changed else "gallery pictures were current")
        print("README.md was current" if refresh_readme() else "README.md refreshed")
    elif args.command == "freeze":
        frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                                check=True, capture_output=True, text=True).stdout
        header = ("# The exact versions the whole suite last passed with (python3 course.py freeze).\n"
                  "# Install them with: pip install -e '.[lab,test]' -c constraints.txt\n")
        (_notebooks.ROOT / "constraints.txt").write_text(header + frozen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
