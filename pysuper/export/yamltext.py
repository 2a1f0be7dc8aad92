"""Export -> YAML text with comments. The only module that imports PyYAML.

PyYAML writes no comments, so each comment is first put into the data as a marker key that
cannot occur otherwise; after yaml.safe_dump, each marker line is replaced by the comment lines at
the marker's indentation. A mapping that is a list item gets its marker after its first key (so
the `- ` stays on a real key); any other mapping gets it first. The output depends only on the
Export: keys keep their order, and no time or host name is written.
"""

import copy
import re

from pysuper.export.common import ExportError

INSTALL_HINT = "pip install 'pysuper[export]'"


def _yaml():
    try:
        import yaml
    except ImportError:
        raise ExportError("pysuper export writes YAML with PyYAML, which is not installed: %s"
                          % INSTALL_HINT) from None
    return yaml


def comment_text(text: str) -> str:
    """One line, no control characters."""
    return "".join(ch if ch >= " " and ch != "\x7f" else "\\x%02x" % ord(ch) for ch in text.replace("\n", "\\n"))


def _dumper(yaml):
    class Dumper(yaml.SafeDumper):
        """Block style, except that a list of plain values (a command) is written on one line; no
        anchors and aliases (a value used twice is written twice)."""

        def ignore_aliases(self, data):
            return True

    def represent_list(dumper, items):
        flow = bool(items) and all(isinstance(item, (str, int, float, bool)) for item in items)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)
    Dumper.add_representer(list, represent_list)
    return Dumper


def _dump(yaml, data) -> str:
    return yaml.dump(data, Dumper=_dumper(yaml), sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=10 ** 6)


def _insert(target: dict, key: str, after_first: bool) -> dict:
    items = list(target.items())
    position = 1 if after_first and items else 0
    items.insert(position, (key, None))
    target.clear()
    target.update(items)
    return target


def render_document(yaml, document: dict, comments) -> str:
    """comments: {path: [lines]} for this document (the () path excluded)."""
    prefix = "pysuper-comment-"
    plain = _dump(yaml, document)
    while prefix in plain:
        prefix = "x" + prefix
    data = copy.deepcopy(document)
    texts = {}
    for number, (path, lines) in enumerate(sorted(comments.items(), key=lambda item: repr(item[0]))):
        node = data
        for step in path:
            node = node[step]
        if not isinstance(node, dict):
            raise TypeError("a comment must belong to a mapping, not %r at %r" % (type(node).__name__, path))
        key = "%s%d" % (prefix, number)
        _insert(node, key, bool(path) and isinstance(path[-1], int))
        texts[key] = lines
    out = []
    marker = re.compile(r"^( *)(%s\d+): null$" % re.escape(prefix))
    for line in _dump(yaml, data).splitlines():
        match = marker.match(line)
        if match:
            out.extend("%s# %s" % (match.group(1), comment_text(text)) for text in texts[match.group(2)])
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def render(export, header, separators: bool) -> str:
    """The whole text: header lines as comments, then each document (after `---` when separators)."""
    yaml = _yaml()
    parts = ["".join("# %s\n" % comment_text(line) for line in header + export.header)]
    for index, document in enumerate(export.documents):
        own = {path: lines for (doc, path), lines in export.comments.items() if doc == index and path}
        top = export.comments.get((index, ()), [])
        if separators:
            parts.append("---\n")
        parts.append("".join("# %s\n" % comment_text(line) for line in top))
        parts.append(render_document(yaml, document, own))
    return "".join(parts)
