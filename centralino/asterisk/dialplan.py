"""A reader for Asterisk `.conf` files and the dialplan in `extensions.conf`.

Config syntax handled (Asterisk's `main/config.c` rules that our files use):
- `[name]` sections; `[name](!)` a template; `[name](tpl1,tpl2)` inherits templates in order;
  `[name](!,tpl)` a template inheriting one; `[name](+)` adds to an earlier section of that name.
  A name may appear twice (a second `[ctx]` appends to the context in extensions.conf).
- `key = value` and `key => value` (the arrow is a synonym; dialplan lines conventionally use it).
- `;` starts a comment unless escaped as `\\;`; `;-- ... --;` is a block comment.
- `#include file` / `#include "file"` and `#tryinclude` (a missing file is not an error);
  relative paths resolve against the including file's folder (Asterisk's astetcdir).
  `#exec` is recorded, never run.

Dialplan: `exten => ext,prio[(label)],App(args)`, `same => n[(label)],App(args)`, priorities as
numbers, `n`, `n+N`, `hint`; `include => context`. Helpers list the applications used, every
FastAGI script name (`agi_scripts_in_dialplan`), queues, Dial targets and Goto destinations.

Pure: reads files, never talks to Asterisk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "ConfigEntry",
    "ConfigError",
    "ConfigFile",
    "ConfigInclude",
    "ConfigSection",
    "Dialplan",
    "DialplanStep",
    "GotoTarget",
    "agi_scripts_in_dialplan",
    "best_match",
    "extension_matches",
    "load_dialplan",
    "parse_config",
    "parse_config_text",
    "split_args",
]

# A config line longer than this is not hand-written configuration; refuse rather than guess.
MAX_LINE_CHARS = 8192
# Includes nest (a.conf includes b.conf ...); Asterisk itself stops deep recursion too.
MAX_INCLUDE_DEPTH = 10


class ConfigError(ValueError):
    """The configuration text is malformed; the message names file and line."""


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    key: str
    value: str
    arrow: bool  # written `=>` rather than `=`
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class ConfigSection:
    name: str
    is_template: bool
    templates: tuple[str, ...]
    additive: bool  # `(+)`: extends an earlier section of the same name
    entries: tuple[ConfigEntry, ...]
    file: str
    line: int

    def get(self, key: str) -> str | None:
        """The last value of `key` in this section alone (no templates)."""
        for entry in reversed(self.entries):
            if entry.key == key:
                return entry.value
        return None


@dataclass(frozen=True, slots=True)
class ConfigInclude:
    target: str
    resolved: Path
    tried: bool  # `#tryinclude`
    exists: bool
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class ConfigFile:
    path: str
    sections: tuple[ConfigSection, ...]
    includes: tuple[ConfigInclude, ...]
    execs: tuple[str, ...] = ()

    def names(self) -> list[str]:
        """Section names in order of first appearance (templates included)."""
        return list(dict.fromkeys(s.name for s in self.sections))

    def sections_named(self, name: str) -> list[ConfigSection]:
        return [s for s in self.sections if s.name == name]

    def has(self, name: str) -> bool:
        return any(s.name == name for s in self.sections)

    def resolved(self, name: str) -> list[ConfigEntry]:
        """Entries of `name` with its templates' entries first (recursively), as Asterisk does."""
        sections = self.sections_named(name)
        if not sections:
            raise KeyError(name)
        out: list[ConfigEntry] = []
        for section in sections:
            out += self._inherited(section, seen=(name,))
            out += section.entries
        return out

    def value(self, name: str, key: str) -> str | None:
        """The effective value of `key` in section `name`, templates applied."""
        for entry in reversed(self.resolved(name)):
            if entry.key == key:
                return entry.value
        return None

    def values(self, name: str, key: str) -> list[str]:
        return [e.value for e in self.resolved(name) if e.key == key]

    def _inherited(self, section: ConfigSection, *, seen: tuple[str, ...]) -> list[ConfigEntry]:
        out: list[ConfigEntry] = []
        for template in section.templates:
            if template in seen:
                raise ConfigError(f"{section.file}:{section.line}: template loop via {template!r}")
            parents = [s for s in self.sections_named(template) if s.is_template]
            if not parents:
                raise ConfigError(
                    f"{section.file}:{section.line}: [{section.name}] inherits"
                    f" unknown template {template!r}"
                )
            for parent in parents:
                out += self._inherited(parent, seen=(*seen, template))
                out += parent.entries
        return out


_SECTION = re.compile(r"^\[([^\]]+)\]\s*(?:\(([^)]*)\))?\s*$")
_DIRECTIVE = re.compile(r"^#\s*(include|tryinclude|exec)\s+(.+?)\s*$")


def _strip_comment(line: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if char == ";":
            break
        out.append(char)
        i += 1
    return "".join(out)


@dataclass
class _Open:
    """The section being read."""

    name: str
    is_template: bool
    additive: bool
    templates: tuple[str, ...]
    line: int
    entries: list[ConfigEntry] = field(default_factory=list)

    def freeze(self, file: str) -> ConfigSection:
        return ConfigSection(
            self.name,
            self.is_template,
            self.templates,
            self.additive,
            tuple(self.entries),
            file,
            self.line,
        )


def parse_config_text(
    text: str, *, name: str = "<string>", base_dir: Path | None = None, _depth: int = 0
) -> ConfigFile:
    """Parse config text; `#include`s are followed relative to `base_dir` when given."""
    sections: list[ConfigSection] = []
    includes: list[ConfigInclude] = []
    execs: list[str] = []
    current: _Open | None = None
    after_include = False
    in_block_comment = False

    for number, raw in enumerate(text.splitlines(), start=1):
        if len(raw) > MAX_LINE_CHARS:
            raise ConfigError(f"{name}:{number}: line longer than {MAX_LINE_CHARS} characters")
        line = raw
        if in_block_comment:
            end = line.find("--;")
            if end < 0:
                continue
            line = line[end + 3 :]
            in_block_comment = False
        start = line.find(";--")
        if start >= 0:
            end = line.find("--;", start + 3)
            if end < 0:
                in_block_comment = True
                line = line[:start]
            else:
                line = line[:start] + line[end + 3 :]
        line = _strip_comment(line).strip()
        if not line:
            continue
        directive = _DIRECTIVE.match(line)
        if directive:
            kind, target = directive.group(1), directive.group(2).strip().strip('"').strip("<>")
            if kind == "exec":
                execs.append(target)
                continue
            resolved = Path(target)
            if not resolved.is_absolute() and base_dir is not None:
                resolved = base_dir / resolved
            exists = resolved.is_file()
            includes.append(
                ConfigInclude(target, resolved, kind == "tryinclude", exists, name, number)
            )
            if exists and base_dir is not None:
                if _depth >= MAX_INCLUDE_DEPTH:
                    raise ConfigError(f"{name}:{number}: includes nested too deeply")
                sub = parse_config_text(
                    resolved.read_text(encoding="utf-8"),
                    name=str(resolved),
                    base_dir=base_dir,
                    _depth=_depth + 1,
                )
                if current is not None:
                    sections.append(current.freeze(name))
                current = None
                after_include = True
                sections += sub.sections
                includes += sub.includes
                execs += sub.execs
            continue
        if line.startswith("["):
            match = _SECTION.match(line)
            if not match:
                raise ConfigError(f"{name}:{number}: malformed section header {raw.strip()!r}")
            if current is not None:
                sections.append(current.freeze(name))
            options = [o.strip() for o in (match.group(2) or "").split(",") if o.strip()]
            current = _Open(
                name=match.group(1).strip(),
                is_template="!" in options,
                additive="+" in options,
                templates=tuple(o for o in options if o not in ("!", "+")),
                line=number,
            )
            continue
        arrow = line.find("=>")
        equals = line.find("=")
        if equals < 0:
            raise ConfigError(f"{name}:{number}: expected 'key = value', got {raw.strip()!r}")
        if current is None:
            # After an #include, Asterisk would continue the included file's last section:
            # too easy to misread, so we require a header.
            where = "after an #include" if after_include else "before the first [section]"
            raise ConfigError(f"{name}:{number}: setting {where}; add a [section] header")
        is_arrow = arrow == equals
        key = line[:equals].strip()
        value = line[equals + (2 if is_arrow else 1) :].strip()
        if not key:
            raise ConfigError(f"{name}:{number}: empty key in {raw.strip()!r}")
        current.entries.append(ConfigEntry(key, value, is_arrow, name, number))
    if in_block_comment:
        raise ConfigError(f"{name}: unterminated ;-- block comment")
    if current is not None:
        sections.append(current.freeze(name))
    return ConfigFile(name, tuple(sections), tuple(includes), tuple(execs))


def parse_config(path: str | Path) -> ConfigFile:
    """Parse one .conf file, following `#include`s relative to its folder."""
    path = Path(path)
    return parse_config_text(path.read_text(encoding="utf-8"), name=str(path), base_dir=path.parent)


def split_args(text: str) -> list[str]:
    """Split application arguments on top-level commas (not inside (), [] or {})."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}" and depth:
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts


@dataclass(frozen=True, slots=True)
class DialplanStep:
    context: str
    extension: str
    priority: int | str  # an int, or "hint"
    label: str | None
    app: str
    args: str
    file: str
    line: int

    @property
    def arguments(self) -> list[str]:
        return split_args(self.args) if self.args else []


@dataclass(frozen=True, slots=True)
class GotoTarget:
    """A Goto/GotoIf/Gosub destination, resolved against the step's own context/extension."""

    context: str
    extension: str
    priority: str  # a number or a label
    step: DialplanStep

    @property
    def dynamic(self) -> bool:
        return "$" in self.context or "$" in self.extension or "$" in self.priority


@dataclass
class Dialplan:
    contexts: dict[str, list[DialplanStep]] = field(default_factory=dict)
    includes: dict[str, list[str]] = field(default_factory=dict)  # `include => ctx` per context
    globals: dict[str, str] = field(default_factory=dict)

    def steps(self) -> Iterator[DialplanStep]:
        for steps in self.contexts.values():
            yield from steps

    def applications(self) -> set[str]:
        """Every dialplan application used, lower-cased names as Asterisk matches them."""
        return {step.app.lower() for step in self.steps() if step.priority != "hint"}

    def calls_of(self, app: str) -> list[DialplanStep]:
        return [s for s in self.steps() if s.app.lower() == app.lower() and s.priority != "hint"]

    def extensions(self, context: str) -> set[str]:
        return {s.extension for s in self.contexts.get(context, [])}

    def find_extension(self, context: str, extension: str) -> tuple[str, str] | None:
        """`(context, extension as written)` Asterisk runs for `extension` dialled in `context`:
        the context's own best match (`best_match`), else its `include =>`s in order."""
        seen: set[str] = set()
        pending = [context]
        while pending:
            ctx = pending.pop(0)
            if ctx in seen:
                continue
            seen.add(ctx)
            written = best_match(self.extensions(ctx), extension)
            if written is not None:
                return ctx, written
            pending[:0] = self.includes.get(ctx, [])
        return None

    def has_priority(self, context: str, extension: str, priority: str) -> bool:
        """Whether dialling `extension` in `context` reaches that priority number or label, as
        Goto and DIALPLAN_EXISTS() see it (patterns and `include =>` too). An extension as
        written (a `_pattern` too) stands for itself: a jump within the running extension."""
        if extension in self.extensions(context):
            found: tuple[str, str] | None = (context, extension)
        else:
            found = self.find_extension(context, extension)
        if found is None:
            return False
        ctx, written = found
        return any(
            step.extension == written and (str(step.priority) == priority or step.label == priority)
            for step in self.contexts[ctx]
        )

    def queues(self) -> set[str]:
        return {s.arguments[0] for s in self.calls_of("Queue") if s.arguments}

    def dial_targets(self) -> list[tuple[str, DialplanStep]]:
        """`(technology/resource, step)` for every `&`-separated Dial target."""
        out: list[tuple[str, DialplanStep]] = []
        for step in self.calls_of("Dial"):
            if step.arguments:
                out += [(t.strip(), step) for t in step.arguments[0].split("&") if t.strip()]
        return out

    def moh_classes(self) -> set[str]:
        """MOH classes named by (Start)MusicOnHold() and Set(CHANNEL(musicclass)=...)."""
        out = {
            s.arguments[0]
            for s in self.calls_of("MusicOnHold") + self.calls_of("StartMusicOnHold")
            if s.arguments and s.arguments[0]
        }
        for step in self.calls_of("Set"):
            match = re.match(r"CHANNEL\(musicclass\)=(.+)", step.args)
            if match:
                out.add(match.group(1).strip())
        return out

    def goto_targets(self) -> list[GotoTarget]:
        out: list[GotoTarget] = []
        for step in self.steps():
            app = step.app.lower()
            if app in ("goto", "gosub"):
                out.append(_destination(step.args, step))
            elif app in ("gotoif", "gosubif"):
                _, _, branches = step.args.rpartition("?")
                for branch in branches.split(":"):
                    if branch.strip():
                        out.append(_destination(branch.strip(), step))
        return out

    def fastagi_scripts(self) -> set[str]:
        """Script names of every `AGI(agi://host[:port]/NAME[?query])` (also EAGI, hagi://)."""
        names: set[str] = set()
        for step in self.calls_of("AGI") + self.calls_of("EAGI"):
            url = step.arguments[0] if step.arguments else ""
            if url.startswith(("agi://", "hagi://")):
                path = urlsplit(url).path.lstrip("/")
                if path:
                    names.add(path)
        return names

    def process_agi_scripts(self) -> set[str]:
        """Local (process) AGI scripts run from astagidir, e.g. `fallback_queue.py`."""
        names: set[str] = set()
        for step in self.calls_of("AGI") + self.calls_of("EAGI"):
            target = step.arguments[0] if step.arguments else ""
            if target and "://" not in target:
                names.add(target)
        return names


# ---- extension patterns (Asterisk's main/pbx.c rules) ------------------------------------------
# `_` starts a pattern. In it: X/x any digit, Z/z 1-9, N/n 2-9, [-a-z0-9_] a class (ranges with
# '-' between two characters, a leading '-' literal; a '-' just before ']' is refused: Asterisk's
# pattern tree reads it as a range up to ']' and loses the class's end), `.` one or more
# characters, `!` zero or more; anything else is literal. Outside classes '-' is a separator
# Asterisk ignores, in the extension written and in the one dialled alike ("555-1212" is
# "5551212"). Matching is case-sensitive. Checked against Asterisk 22.10.1's
# `dialplan show <exten>@<context>` and calls into such patterns.
_WILDCARDS = {"X": "0123456789", "Z": "123456789", "N": "23456789"}
_ANY_ONE_OR_MORE = 1 << 16  # `.` matches more than any class
_ANY_ZERO_OR_MORE = 1 << 17  # `!` more still


def _pattern_positions(pattern: str) -> list[tuple[str, int]]:
    """A pattern as (regex piece, how many characters it admits) per position."""
    out: list[tuple[str, int]] = []
    rest = pattern[1:]
    while rest:
        char, rest = rest[0], rest[1:]
        if char == "[":
            end = rest.find("]")
            if end < 0:
                raise ConfigError(f"pattern {pattern!r}: '[' without ']'")
            body, rest = rest[:end], rest[end + 1 :]
            if len(body) > 1 and body.endswith("-"):
                raise ConfigError(f"pattern {pattern!r}: '-' just before ']' (write it first)")
            members: set[str] = set()
            i = 0
            while i < len(body):
                if i + 2 < len(body) and body[i + 1] == "-":
                    members |= {chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1)}
                    i += 3
                else:
                    members.add(body[i])
                    i += 1
            out.append(("[" + "".join(re.escape(m) for m in sorted(members)) + "]", len(members)))
        elif char.upper() in _WILDCARDS:
            digits = _WILDCARDS[char.upper()]
            out.append((f"[{digits}]", len(digits)))
        elif char == ".":
            out.append((".+", _ANY_ONE_OR_MORE))
        elif char == "!":
            out.append((".*", _ANY_ZERO_OR_MORE))
        elif char != "-":
            out.append((re.escape(char), 1))
    return out


def extension_matches(written: str, dialled: str) -> bool:
    """Whether an extension as written in the dialplan (a name or a `_pattern`) matches the
    extension dialled, by Asterisk's rules (above)."""
    dialled = dialled.replace("-", "")
    if not written.startswith("_"):
        return written.replace("-", "") == dialled
    regex = "".join(piece for piece, _ in _pattern_positions(written))
    return re.fullmatch(regex, dialled, re.DOTALL) is not None


def best_match(written: Iterable[str], dialled: str) -> str | None:
    """The extension Asterisk picks among those `written` in one context for `dialled`: a name
    that equals it, else the most specific matching pattern (position by position, the one that
    admits fewer characters; `.` and `!` last)."""
    matching = [w for w in written if w != "" and extension_matches(w, dialled)]
    names = [w for w in matching if not w.startswith("_")]
    if names:
        return names[0]
    if not matching:
        return None
    return min(matching, key=lambda w: ([n for _, n in _pattern_positions(w)], w))


def _destination(text: str, step: DialplanStep) -> GotoTarget:
    # Gosub(ctx,exten,prio(args)): the call arguments are not part of the destination.
    parts = split_args(re.sub(r"\(.*\)$", "", text.strip()))
    if len(parts) == 1:
        return GotoTarget(step.context, step.extension, parts[0], step)
    if len(parts) == 2:
        return GotoTarget(step.context, parts[0], parts[1], step)
    return GotoTarget(parts[0], parts[1], parts[2], step)


_PRIORITY = re.compile(r"^(\d+|n(?:\+\d+)?|hint)(?:\((\w+)\))?$")


def load_dialplan(path: str | Path) -> Dialplan:
    """Read extensions.conf (and its includes) into contexts of numbered steps."""
    config = parse_config(path)
    return dialplan_from_config(config)


def dialplan_from_config(config: ConfigFile) -> Dialplan:
    plan = Dialplan()
    for section in config.sections:
        if section.name == "general":
            continue
        if section.name == "globals":
            plan.globals.update({e.key: e.value for e in section.entries})
            continue
        steps = plan.contexts.setdefault(section.name, [])
        includes = plan.includes.setdefault(section.name, [])
        last_exten: str | None = None
        last_priority = 0
        for entry in section.entries:
            where = f"{entry.file}:{entry.line}"
            key = entry.key.lower()
            if key == "include":
                includes.append(entry.value.split(",")[0].strip())
                continue
            if key in ("switch", "ignorepat"):
                continue
            if key == "exten":
                extension, sep, rest = entry.value.partition(",")
                if not sep:
                    raise ConfigError(f"{where}: exten needs 'ext,priority,App(...)'")
                extension = extension.strip()
                if extension != last_exten:
                    last_priority = 0
                last_exten = extension
            elif key == "same":
                if last_exten is None:
                    raise ConfigError(f"{where}: 'same =>' before any 'exten =>'")
                extension, rest = last_exten, entry.value
            else:
                raise ConfigError(f"{where}: unknown dialplan keyword {entry.key!r}")
            priority_text, sep, command = rest.partition(",")
            match = _PRIORITY.match(priority_text.strip())
            if not sep or not match:
                raise ConfigError(f"{where}: bad priority in {entry.value!r}")
            number_text, label = match.group(1), match.group(2)
            priority: int | str
            if number_text == "hint":
                priority = "hint"
            elif number_text.startswith("n"):
                priority = last_priority + (int(number_text[2:]) if "+" in number_text else 1)
            else:
                priority = int(number_text)
            if isinstance(priority, int):
                if priority < 1:
                    raise ConfigError(f"{where}: priority must start at 1")
                last_priority = priority
            app, args = _application(command.strip(), where)
            steps.append(
                DialplanStep(
                    section.name, extension, priority, label, app, args, entry.file, entry.line
                )
            )
    return plan


def _application(command: str, where: str) -> tuple[str, str]:
    if not command:
        raise ConfigError(f"{where}: missing application")
    paren = command.find("(")
    if paren < 0:
        app, _, args = command.partition(",")  # old style `App,args`
        return app.strip(), args.strip()
    if not command.endswith(")"):
        raise ConfigError(f"{where}: unbalanced parentheses in {command!r}")
    return command[:paren].strip(), command[paren + 1 : -1]


def agi_scripts_in_dialplan(path: str | Path) -> set[str]:
    """FastAGI script names used by a dialplan file: `AGI(agi://host:4573/inbound?x=1)` → `inbound`.

    The dialplan contract test checks each of these has a route in the FastAGI router.
    """
    return load_dialplan(path).fastagi_scripts()


def referenced_names(values: Iterable[str]) -> set[str]:
    """Comma-separated lists (e.g. `aors = a, b`) flattened to names."""
    return {v.strip() for value in values for v in value.split(",") if v.strip()}
