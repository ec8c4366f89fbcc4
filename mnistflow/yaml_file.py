"""Small YAML files (params and sweep files) read within bounds, whatever their bytes.

A params or sweep file is a few hundred bytes; these bounds keep reading any
file, however hostile, to milliseconds and kilobytes. Aliases are counted as
what they expand to: a "billion laughs" document of 1 KB is a billion values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import MnistflowError

MAX_YAML_BYTES = 1 << 20
MAX_YAML_VALUES = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only), made to count before it builds."""


class DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(node: yaml.MappingNode) -> None:
    """YAML leaves a repeated key last-wins; a params file with two ``lr:`` is a mistake to name, not to guess."""
    seen: dict[Any, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        if key.value in seen:
            raise DuplicateKey(f"key {key.value[:40]!r} twice in one mapping, at lines {seen[key.value]} and "
                               f"{key.start_mark.line + 1}; keep one")
        seen[key.value] = key.start_mark.line + 1


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` is once every alias is expanded (shared nodes counted each time)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_YAML_VALUES + 1  # a node inside itself (a recursive alias) is unbounded
    if isinstance(node, yaml.MappingNode):
        _no_duplicate_keys(node)
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_YAML_VALUES + 1)
    return memo[id(node)]


def read_yaml(path: str | Path, what: str = "params file") -> Any:
    """The plain data of a small YAML file, within bounds; every failure is one line naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise MnistflowError(f"{path}: not a regular file")
        if size > MAX_YAML_BYTES:
            raise MnistflowError(f"{path}: {size:,} bytes; a {what} is at most {MAX_YAML_BYTES:,}")
        with open(path, "rb") as fh:
            data = fh.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise MnistflowError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise MnistflowError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_YAML_BYTES:  # grew since the stat, or a file whose size lies
        raise MnistflowError(f"{path}: over {MAX_YAML_BYTES:,} bytes; a {what} is at most that")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MnistflowError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_VALUES:
            raise MnistflowError(f"{path}: expands to over {MAX_YAML_VALUES:,} values (aliases of aliases?); "
                                 f"a {what} is a few dozen")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise MnistflowError(f"{path}: not valid YAML{where}") from None
    except DuplicateKey as exc:
        raise MnistflowError(f"{path}: {exc}") from None
    except RecursionError:
        raise MnistflowError(f"{path}: nested too deeply to be a {what}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a value YAML cannot build (an int of 5,000 digits)
        raise MnistflowError(f"{path}: a value cannot be read ({str(exc)[:120]})") from None
    finally:
        loader.dispose()
