"""Text from run records made inert for each format it is rendered in.

Method, task, metric, dataset and model names come from records that anyone can write, so a
name is text, never markup: not HTML or a Markdown link, table cell break or code span; not a
LaTeX command (``\\input`` would read a file when the table is compiled); not a spreadsheet
formula; not matplotlib mathtext.
"""

from __future__ import annotations

import html

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


def _one_line(text: object) -> str:
    return " ".join(str(text).splitlines())


def markdown_text(text: object) -> str:
    """Inside a Markdown line or table cell: HTML escaped, Markdown's link, code and cell
    characters backslash-escaped, one line.

    Example:
        >>> markdown_text("EW | x <script>")
        'EW \\\\| x &lt;script&gt;'
    """
    escaped = html.escape(_one_line(text), quote=False)
    return "".join(_MARKDOWN.get(char, char) for char in escaped)


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
