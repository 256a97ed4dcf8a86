"""Which names can name a run folder: the rule a sweep applies to its methods, optimizers and
tasks, and that anything writing a sweep spec applies before it writes one."""

from __future__ import annotations


def folder_name_problem(name: str) -> str:
    """Why ``name`` cannot be part of a run folder's name ('' when it can): it could leave the
    runs folder (a path separator, ``..``), or no file system keeps it as written (empty, NUL or
    another control character).

    Example:
        >>> folder_name_problem("Nash-MTL"), folder_name_problem("../x")
        ('', "it holds '/' or '..'")
    """
    if not name:
        return "it is empty"
    if any(separator in name for separator in ("/", "\\")) or ".." in name:
        return "it holds '/' or '..'"
    if any(ord(character) < 32 or ord(character) == 127 for character in name):
        return "it holds a control character (or NUL)"
    return ""
