"""Text from run records made inert for each format it is rendered in.

Method, task, metric, dataset and model names come from records that anyone can write, so a
name is text, never markup: not HTML or a Markdown link, table cell break or code span, nor an
address a Markdown renderer links by itself (GitHub's autolinks); not a LaTeX command
(``\\input`` would read a file when the table is compiled); not a spreadsheet formula; not
matplotlib mathtext.
"""

from __future__ import annotations

import html
import re
import urllib.parse

_MARKDOWN = {"\\": "\\\\", "`": "\\`", "*": "\\*", "[": "\\[", "]": "\\]", "|": "\\|"}
_LATEX = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\^{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What GitHub-flavoured Markdown links without being asked (its autolink extension): a scheme's
# "://", "www." and an e-mail address. An entity renders the same character but is not matched
# for the first two; an e-mail address is matched after entities are decoded, so an empty HTML
# comment (shown as nothing) parts its "@" from the name before it.
_AUTOLINKS = re.compile(r"(?P<scheme>://)|(?P<www>(?i:www)\.)|(?P<mail>(?<=[A-Za-z0-9.+_-])@(?=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]))")
_UNLINKED = {"scheme": "&#58;//", "mail": "<!-- -->@"}


def _one_line(text: object) -> str:
    return " ".join(str(text).splitlines())


def markdown_text(text: object) -> str:
    """Inside a Markdown line or table cell: HTML escaped, Markdown's link, code and cell
    characters backslash-escaped, addresses shown as text but not linked, one line.

    Example:
        >>> markdown_text("EW | x <script>")
        'EW \\\\| x &lt;script&gt;'
        >>> markdown_text("https://www.x.org")
        'https&#58;//www&#46;x.org'
    """
    escaped = html.escape(_one_line(text), quote=False)
    escaped = "".join(_MARKDOWN.get(char, char) for char in escaped)
    return _AUTOLINKS.sub(_unlinked, escaped)


def _unlinked(match: re.Match) -> str:
    kind = match.lastgroup or ""
    return match.group()[:-1] + "&#46;" if kind == "www" else _UNLINKED[kind]


def markdown_address(url: str) -> str:
    """An address meant as a link (a published table's ``https://`` source), as a Markdown
    autolink: every character that could end it or split a table cell percent-encoded.

    Example:
        >>> markdown_address("https://arxiv.org/abs/1 x>|y")
        '<https://arxiv.org/abs/1%20x%3E%7Cy>'
    """
    return "<" + urllib.parse.quote(_one_line(url), safe="/:?#[]@!$&'()*+,;=%~") + ">"


def latex_text(text: object) -> str:
    r"""Inside LaTeX text: every special character as its literal form.

    Example:
        >>> latex_text(r"\input{/etc/passwd}")
        '\\textbackslash{}input\\{/etc/passwd\\}'
    """
    return "".join(_LATEX.get(char, char) for char in _one_line(text))


def csv_text(text: object) -> str:
    """A CSV cell a spreadsheet shows as text, never evaluates as a formula (OWASP's advice: a
    leading quote before ``= + - @``)."""
    value = _one_line(text)
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def plot_text(text: object) -> str:
    """A matplotlib label shown as written (no mathtext between dollar signs)."""
    return _one_line(text).replace("$", r"\$")


def html_text(text: object) -> str:
    """Inside HTML text or a quoted attribute."""
    return html.escape(str(text), quote=True)
