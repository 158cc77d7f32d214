"""MkDocs hook: serve the crate's rustdoc as part of the site, under rustdoc/.

`cargo doc --no-deps` writes it to target/doc (`make docs` runs it first).
Adding those files to the site's file list copies them into site/rustdoc/
and lets MkDocs check links to them like links to any page.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files


def _rustdoc(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).parent / "target" / "doc"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = _rustdoc(config)
    if not (root / "ringstat" / "index.html").is_file():
        raise PluginError(f"no rustdoc in {root}: run `cargo doc --no-deps` first (make docs does)")
    for path in sorted(root.rglob("*")):
        # Markdown files (a font's licence) would become pages: on_post_build copies them.
        if path.is_file() and path.name != ".lock" and path.suffix != ".md":
            src_uri = "rustdoc/" + path.relative_to(root).as_posix()
            files.append(File.generated(config, src_uri, abs_src_path=str(path)))
    return files


def on_post_build(config: MkDocsConfig) -> None:
    root = _rustdoc(config)
    for path in root.rglob("*.md"):
        dest = Path(config.site_dir) / "rustdoc" / path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
