"""Hostile inputs for the security tests: a pickle that runs a command when it is read."""

from __future__ import annotations

import pickle

import torch


def pickled_command(marker) -> torch.Tensor:
    """What a method state held before layout 1, as an attacker writes it: a pickle that runs a
    command when it is read (here through a class reachable from an allowed package, the route
    that got past the allowlist unpickler this layout replaced)."""
    module, name = "cvxpy.atoms.affine", "add_expr.np.f2py.subprocess.Popen"
    payload = b"\x80\x04" + pickle.SHORT_BINUNICODE + bytes([len(module)]) + module.encode()
    payload += pickle.SHORT_BINUNICODE + bytes([len(name)]) + name.encode() + pickle.STACK_GLOBAL
    payload += pickle.dumps((["sh", "-c", f"touch {marker}"],), protocol=4)[2:-1] + pickle.REDUCE + pickle.STOP
    return torch.frombuffer(bytearray(payload), dtype=torch.uint8).clone()
