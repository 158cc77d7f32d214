"""Griffe extension: the package's docstrings are written for Sphinx (roles
such as :class:`Queue`, doctests, ``::`` literal blocks); the site renders
Markdown. Rewrite those three into Markdown, so the stubs stay the one
source of the API reference: a role naming something the reference shows
becomes a link to it, any other role a code span."""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|mod|attr|exc|data|obj):`~?([^`]+)`")
DOCS = Path(__file__).resolve().parents[1]


def _documented() -> set[str]:
    """The modules the reference pages render (their `::: module` lines)."""
    found = set()
    for page in DOCS.rglob("*.md"):
        found.update(re.findall(r"^::: (\S+)", page.read_text(), re.MULTILINE))
    return found


def _shown(package: griffe.Module, path: str, documented: AbstractSet[str]) -> bool:
    """Whether `ringstat.<path>` is an object the reference renders."""
    parts = path.split(".")
    if any(p.startswith("_") and p != "__new__" for p in parts):
        return False
    exports = package.exports or ()
    in_root = package.path in documented and parts[0] in exports
    if not in_root and f"{package.path}.{parts[0]}" not in documented:
        return False
    try:
        member = package[path]
        if member.is_alias:
            member.final_target  # noqa: B018 (raises if it leads outside the package)
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    return True


def _candidates(obj: griffe.Object, name: str) -> list[str]:
    """Where `name` may point, as paths under the package: relative to the
    object's class, to its module, then as given."""
    out = []
    cls = obj if obj.is_class else obj.parent if obj.parent and obj.parent.is_class else None
    if cls is not None:
        out.append(f"{cls.name}.{name}")
    module = obj.module.path.removeprefix(obj.package.path + ".")
    if module != obj.package.path and not module.startswith("_"):
        out.append(f"{module}.{name}")
    out.append(name)
    return out


def _fence(lines: list[str], start: int, lang: str, indent: str) -> tuple[list[str], int]:
    """The block of lines from `start` (until a blank line) in a fence."""
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    body = [line[len(indent) :] for line in lines[start:end]]
    return [f"```{lang}", *body, "```"], end


def markdown(
    text: str, obj: griffe.Object | None = None, documented: AbstractSet[str] = frozenset()
) -> str:
    def role(match: re.Match[str]) -> str:
        target = match.group(1)
        if obj is not None:
            package = obj.package
            name = target.removeprefix(package.path + ".")
            for path in _candidates(obj, name):
                if _shown(package, path, documented):
                    return f"[`{target}`][{package.path}.{path}]"
        return f"`{target}`"

    text = ROLE.sub(role, text)
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            block, i = _fence(lines, i, "pycon", indent)
            out += ["", *block, ""]  # a fence needs blank lines around it
        elif line.rstrip().endswith("::") and i + 1 < len(lines):
            # "Layout::" then an indented literal block after a blank line.
            out.append(line.rstrip()[:-1])
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            indent = lines[j][: len(lines[j]) - len(lines[j].lstrip())] if j < len(lines) else ""
            if not indent:
                i += 1
                continue
            end = j
            while end < len(lines) and (not lines[end].strip() or lines[end].startswith(indent)):
                end += 1
            while end > j and not lines[end - 1].strip():
                end -= 1
            out += ["", "```text", *(ln[len(indent) :] for ln in lines[j:end]), "```", ""]
            i = end
        else:
            out.append(line)
            i += 1
    return "\n".join(out)


class RstToMarkdown(griffe.Extension):
    def __init__(self) -> None:
        self.documented = _documented()
        self.done: set[int] = set()  # docstrings rewritten (the root is seen twice)

    def _rewrite(self, obj: griffe.Object) -> None:
        if obj.docstring is not None and id(obj.docstring) not in self.done:
            self.done.add(id(obj.docstring))
            obj.docstring.value = markdown(obj.docstring.value, obj, self.documented)

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        self._rewrite(obj)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        # on_object does not see the package itself.
        self._rewrite(pkg)
