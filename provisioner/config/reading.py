"""Reading the user's files: text (decrypted when ansible-vault encrypted it whole) and YAML whose
mappings remember their keys' lines, so every later error can name the file and line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from provisioner.config.apps import refuse_twice_named
from provisioner.config.local_input import refuse_special_file
from provisioner.config.secret import Secret, as_secrets
from provisioner.config.vault import Encrypted, Vault, is_encrypted
from provisioner.errors import UserError


def shown(path: Path) -> str:
    """The path as a user would write it: relative to the current directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


def read_text(path: Path, what: str, vault: Vault, fix: str = "check the path") -> tuple[str, bool]:
    """The text of `path` (`what` it is, for messages: "inventory"), decrypted if ansible-vault encrypted
    it; and whether it was encrypted (then everything in it is a secret)."""
    name = shown(path)
    refuse_special_file(path, what, name, fix)
    try:
        text = path.read_text(encoding="utf-8-sig")     # a byte-order mark (Windows editors) is not text
    except FileNotFoundError:
        raise UserError(f"{what} {name} not found", fix) from None
    except IsADirectoryError:
        raise UserError(f"{what} {name} is a directory, not a file", fix) from None
    except UnicodeDecodeError:
        raise UserError(f"{what} {name} is not UTF-8 text", "save it as UTF-8") from None
    except OSError as error:
        raise UserError(f"cannot read {what} {name}: {error.strerror}", "check the path and its permissions") from None
    if is_encrypted(text):
        text, encrypted = vault.decrypt(text, name), True
    else:
        encrypted = False
    refuse_control_characters(text, name)
    return text, encrypted


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def refuse_control_characters(text: str, name: str) -> None:
    """A control character (a pasted colour escape, a NUL) is never meant: name its line, not YAML's reader."""
    found = _CONTROL.search(text)
    if found:
        line = text.count("\n", 0, found.start()) + 1
        raise UserError(f"{name}:{line}: a control character {found.group()!r} is in the text (a pasted terminal "
                        "colour code or a binary file?)", f"delete it from line {line}; only tabs and line breaks "
                        "are allowed")


def load_yaml(path: Path, what: str, vault: Vault, fix: str = "check the path") -> tuple[Any, list[str]]:
    """The YAML data of a file (secrets throughout when the file was vault-encrypted) and its warnings."""
    text, encrypted = read_text(path, what, vault, fix)
    data, warnings = parse_yaml(text, shown(path), vault)
    return (as_secrets(data) if encrypted else data), warnings


def parse_yaml(text: str, name: str, vault: Vault) -> tuple[Any, list[str]]:
    """YAML `text` read from `name`, and warnings about keys written twice in one mapping."""
    refuse_control_characters(text, name)
    loader = InventoryLoader(text, name, vault)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        raise _yaml_error(error, name) from None
    except yaml.YAMLError as error:
        raise UserError(f"{name}: {str(error).splitlines()[0]}", "fix the YAML syntax") from None
    except ValueError:    # a number too long for int() (Python reads at most 4300 digits)
        long = re.search(r"\d{4301,}", text)
        line = f":{text.count(chr(10), 0, long.start()) + 1}" if long else ""
        raise UserError(f"{name}{line}: a number of more than 4300 digits, beyond any real value",
                        "shorten that number, or quote it if it is text") from None
    finally:
        loader.dispose()
    refuse_twice_named(data, name)
    warnings = [f"{name}:{line}: {key!r} is written twice in the same mapping; the last one wins"
                for key, line in loader.duplicates]
    return data, warnings


def _yaml_error(error: yaml.MarkedYAMLError, name: str) -> UserError:
    mark = error.problem_mark or error.context_mark
    where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
    what = error.problem or error.context or "invalid YAML"
    if error.context and error.problem and error.context_mark and error.context_mark is not mark:
        what += f" ({error.context} at line {error.context_mark.line + 1})"
    fix = ("indent with spaces, not tabs" if "\\t" in what else
           "fix the YAML at that line: indent with spaces, put a space after ':', "
           "quote values that contain ': ' or ' #'")
    return UserError(f"{where}: {what}", fix)


class LineMap(dict):
    """A YAML mapping that remembers the (1-based) line each key was written on: `.lines[key]`, and
    the line of each key written again in it: `.twice[key]` (setting `apps` refuses those)."""

    lines: dict
    twice: dict


class InventoryLoader(yaml.SafeLoader):
    """SafeLoader + `!secret` (-> Secret), `!unsafe` (a plain string; Ansible's tag), `!vault` (an Encrypted
    value, decrypted with the run's vault passwords into a Secret when a setting uses it), and mappings that remember their keys' lines.
    `.duplicates` lists (key, line) of keys written twice in one mapping (the later one wins, as in Ansible)."""

    def __init__(self, stream, name: str = "<text>", vault: Vault | None = None):
        super().__init__(stream)
        self.name = name
        self.vault = vault or Vault()
        self.duplicates: list[tuple[Any, int]] = []


def _construct_map(loader: InventoryLoader, node: yaml.MappingNode):
    data = LineMap()
    yield data
    data.lines, data.twice, seen = {}, {}, set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            loader.duplicates.append((key, key_node.start_mark.line + 1))
            data.twice[key] = key_node.start_mark.line + 1
        seen.add(key)
        data.lines[key] = key_node.start_mark.line + 1
    data.update(loader.construct_mapping(node))


def _scalar(loader: InventoryLoader, node: yaml.Node, tag: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, f"{tag} marks a single value, not a list or a mapping", node.start_mark)
    return loader.construct_scalar(node)


def _construct_vault(loader: InventoryLoader, node: yaml.Node) -> Encrypted:
    return Encrypted(_scalar(loader, node, "!vault"), f"{loader.name}:{node.start_mark.line + 1}", loader.vault)


InventoryLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
InventoryLoader.add_constructor("!secret", lambda loader, node: Secret(_scalar(loader, node, "!secret")))
InventoryLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
InventoryLoader.add_constructor("!vault", _construct_vault)
