"""Griffe extensions for the docs site (``mkdocs.yml`` loads them): what the API reference shows of zoofit's source.

- ``SphinxRoles``: the docstrings are numpydoc with Sphinx roles; mkdocstrings reads Markdown. Each role
  (``:class:`~zoofit.Ranker```) becomes an optional cross-reference of mkdocs-autorefs: a link where the site
  documents the target, plain code where it does not (a private helper, say), so the strict build never fails on
  a role. ``~`` shows the last part of the name, as in Sphinx; a bare name is looked up where it is written.
- ``Settings``: a config's field declared with ``setting(default, help, ...)`` shows its default as its value (and
  in the class's signature) and its help as its docstring, the help the command line shows.
- ``LazyExports``: a package whose names are imported on first use (``zoofit.lazy``) lists them in a literal
  ``_MODULES = {"module": ("Name", ...)}``; those names become its exports, as a package that imports them.
- ``NumpyItems``: a warning (so the strict build fails) for a parameter or attribute written ``name : description``,
  which numpydoc reads as ``name : type``: the page would show the description as the type.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import griffe

ITEMS = re.compile(
    r"^\s*(Parameters|Other Parameters|Attributes)\n\s*-+\n(?P<body>.*?)(?=\n\s*\n\s*\S[^\n]*\n\s*-{3,}\n|\Z)",
    re.S | re.M,
)
ITEM = re.compile(r"^(?P<indent>[ ]*)(?P<name>\*{0,2}[\w, ]+?) : (?P<type>.+)$", re.M)
ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(?P<tilde>~?)(?P<target>[\w.]+)`")


def resolved(obj: griffe.Object, target: str) -> str:
    """The full path of ``target`` as written in ``obj``'s docstring (itself where it cannot be looked up)."""
    head, _, rest = target.partition(".")
    try:
        path = obj.resolve(head) if isinstance(obj, griffe.Module) or obj.parent is None else obj.parent.resolve(head)
    except (griffe.NameResolutionError, AttributeError, ValueError):
        return target
    return f"{path}.{rest}" if rest else path


def linked(obj: griffe.Object, text: str) -> str:
    """``text`` with each role replaced by an optional autorefs link in code font."""

    def link(match: re.Match[str]) -> str:
        target = match["target"]
        shown = target.rsplit(".", 1)[-1] if match["tilde"] else target
        return f'<autoref identifier="{resolved(obj, target)}" optional><code>{shown}</code></autoref>'

    return ROLE.sub(link, text)


class NumpyItems(griffe.Extension):
    """Warns where a numpydoc item's type is prose: a description written on the name's line. (Defined first, so
    that it reads the docstrings before the roles are rewritten.)"""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None or obj.is_alias:
            return
        text = obj.docstring.value
        for section in ITEMS.finditer(text):
            for item in ITEM.finditer(section["body"]):
                kind = item["type"]
                prose = kind.rstrip().endswith(".") or "``" in kind or ":" in kind or len(kind.split()) > 8
                if not item["indent"] and prose:
                    griffe.logger.warning(
                        "%s:%s: '%s : %s' puts a description where numpydoc reads a type; write '%s : TYPE' and the "
                        "description indented on the next line",
                        obj.relative_filepath,
                        obj.docstring.lineno,
                        item["name"],
                        kind[:40],
                        item["name"],
                    )


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring once the object tree is built (names resolve then)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and not obj.is_alias:
            obj.docstring.value = linked(obj, obj.docstring.value)


class Settings(griffe.Extension):
    """Reads each ``setting(default, help, ...)`` field as its default, documented by its help."""

    def on_attribute_instance(self, *, attr: griffe.Attribute, **kwargs: Any) -> None:
        value = attr.value
        if not (isinstance(value, griffe.ExprCall) and str(value.function) == "setting" and len(value.arguments) > 1):
            return
        default, help_text = value.arguments[:2]
        attr.value = default  # before the dataclass's signature is built from it
        if attr.docstring is None and isinstance(help_text, str):  # a literal (an f-string stays undocumented)
            attr.docstring = griffe.Docstring(ast.literal_eval(help_text), parent=attr)


class LazyExports(griffe.Extension):
    """Gives a package with a literal ``_MODULES`` the members and exports its ``__getattr__`` serves."""

    def on_module(self, *, mod: griffe.Module, **kwargs: Any) -> None:
        declared = mod.members.get("_MODULES")
        if declared is None or not mod.is_init_module:
            return
        names = []
        for module, exported in ast.literal_eval(str(declared.value)).items():
            for name in exported:
                mod.set_member(name, griffe.Alias(name, f"{mod.path}.{module}.{name}", parent=mod))
                names.append(name)
        mod.exports = sorted(names)
