"""Griffe extension: the package's docstrings are written for Sphinx (roles
such as :class:`Queue`, doctests, ``::`` literal blocks); the site renders
Markdown. Rewrite those three into Markdown code spans and fenced blocks,
so the stubs stay the one source of the API reference."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|mod|attr|exc|data|obj):`~?([^`]+)`")


def _fence(lines: list[str], start: int, lang: str, indent: str) -> tuple[list[str], int]:
    """The block of lines from `start` (until a blank line) in a fence."""
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    body = [line[len(indent) :] for line in lines[start:end]]
    return [f"```{lang}", *body, "```"], end


def markdown(text: str, package: griffe.Module | None = None) -> str:
    def role(match: re.Match[str]) -> str:
        # A public class or method of the package links to its entry in the
        # reference (`ringstat.Registry.snapshot`); anything else is code.
        target = match.group(1).removeprefix("ringstat.")
        head = target.split(".")[0]
        if package is not None and head in (package.exports or ()):
            try:
                member = package[target]
                if member.is_alias:
                    member.final_target  # noqa: B018 (raises if it leads outside)
            except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                pass
            else:
                return f"[`{match.group(1)}`][ringstat.{target}]"
        return f"`{match.group(1)}`"

    text = ROLE.sub(role, text)
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            block, i = _fence(lines, i, "pycon", indent)
            out += block
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
        self.done: set[int] = set()  # docstrings rewritten (the root is seen twice)

    def _rewrite(self, obj: griffe.Object) -> None:
        if obj.docstring is not None and id(obj.docstring) not in self.done:
            self.done.add(id(obj.docstring))
            obj.docstring.value = markdown(obj.docstring.value, obj.package)

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        self._rewrite(obj)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        # on_object does not see the package itself.
        self._rewrite(pkg)
