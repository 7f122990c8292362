"""The action grammar of the text bridge: actions, messages, their text, and a reply parser.

A language model commands its teams (squads of StarCraft units, or Crafter players) by
answering in the layout of LLM-PySC2's ``DefaultTranslatorA`` (arXiv 2411.05348)::

    Analysis:
      ...free text, not read...
    Actions:
      Team Stalker-1:
        <Attack_Unit(0x101480001)>
        <Move_Screen([67, 96])>
      Team Stalker-2:
        <Stop()>
    Communications:
        <MessageTo(Commander, '''Copy that, moving in.''')>
        <ListenTo(Channel-1)>

Grammar card
------------
- action ``<Name(arguments)>``: ``Name`` is an identifier ``[A-Za-z_][A-Za-z0-9_]*`` right
  after ``<`` (spaces allowed around it; ``MessageTo`` and ``ListenTo`` are reserved). The
  arguments, separated by commas or spaces, are at most 3 unit tags ``0x[0-9a-fA-F]+`` (kept
  lower-cased) and at most one point ``[x, y]`` of integers (at most 9 digits, a minus sign
  allowed: the environment judges the range). E.g. ``<Attack_Unit(0x100030001)>``,
  ``<Move_Screen([23, 37])>``, ``<Stop()>``, ``<Load_Unit(0x1a, [4, 5])>``. The name is not
  checked against an action set: which actions exist depends on the unit, the bridge checks.
- message ``<MessageTo(Target, '''text''')>``: ``Target`` (``[A-Za-z0-9_-]+``) is an agent's
  name or a channel ``Channel-<i>``. Quoted with ``'''`` the text may span lines and ends at
  the first ``'''`` followed by ``)>``; quoted with ``'`` or ``"`` it ends on its own line at
  the first such quote followed by ``)>`` (so ``'I'm coming'`` reads as ``I'm coming``).
- listen ``<ListenTo(Channel-<i>)>``: subscribe to a channel.

Parsing rules
-------------
1. The reply is read line by line (split at ``\\n``). Section headers and team lines are only
   looked for in the text before a line's first ``<``, so a message cannot switch sections.
2. A line containing ``Actions:`` (or ``Action:``) starts the action section, one containing
   ``Communications:`` the communication section; the latest header counts. Text before the
   first header is not read. No ``Actions:`` line at all is an error, and no actions are taken.
3. In the action section ``Team X:`` (also ``Team X :`` and markdown ``**Team X:**``) makes X
   the current team. X must be one of ``teams`` exactly; otherwise it is an error and the
   actions up to the next team line are dropped. Actions before any team line go to
   ``teams[0]`` when there is exactly one team; with several they are dropped with one error
   naming the teams. Each ``Actions:`` header starts again without a current team.
4. Every ``<...>`` of a line is read: in the action section as an action of the current team,
   in both sections as a message or a listen. In the communication section any other
   ``<...>`` is an error, not an action.
5. A team keeps its first ``max_actions`` actions; one error per team says how many more
   were dropped.
6. Whatever cannot be used is an error line (``line N: ...``, quoted text cut to 60
   characters) and is dropped whole: a malformed ``<...>``, an unrecognised argument, more
   than 3 tags or more than one point, a bad message or listen, a message never closed, an
   unknown team. At most 10 error lines are returned, then ``... N more errors``.
7. ``parse_reply`` never raises on the reply text; it raises ``ValueError`` only for a
   programming error (no teams, an invalid team name, ``max_actions < 1``).

Team names are words of ``[A-Za-z0-9_-]`` separated by single spaces (at most 100
characters). ``format_reply`` writes the layout above, and ``parse_reply`` of its text gives
back the same actions, messages and channels with no errors.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_TAGS = 3
MAX_ERROR_LINES = 10
QUOTE_WIDTH = 60
MAX_TEAM_NAME = 100
_POINT_LIMIT = 10**9  # 9 digits at most, so reading a coordinate is cheap and cannot fail

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_RESERVED_NAMES = frozenset({"MessageTo", "ListenTo"})
_ACTION_NAME = re.compile(_IDENTIFIER)
_TARGET = re.compile(r"[A-Za-z0-9_\-]+")
_TAG = re.compile(r"0x[0-9a-f]+")
_CHANNEL = re.compile(r"Channel-[0-9]+")
_TEAM_NAME = re.compile(r"[A-Za-z0-9_\-]+(?: [A-Za-z0-9_\-]+)*")
_SECTION_HEADERS = ("Actions:", "Action:", "Communications:")

_TEAM_LINE = re.compile(rf"\bTeam\s+(?P<name>[^:<>]{{1,{MAX_TEAM_NAME}}}?)\s*:")
_TOKEN_NAME = re.compile(rf"<\s*(?P<name>{_IDENTIFIER})")
_ACTION = re.compile(rf"<\s*(?P<name>{_IDENTIFIER})\s*\((?P<arguments>[^()<>]*)\)\s*>")
_ARGUMENT = re.compile(
    r"(?P<tag>0x[0-9a-fA-F]+)(?=[\s,\[]|$)"
    r"|\[\s*(?P<x>-?[0-9]{1,9})\s*,\s*(?P<y>-?[0-9]{1,9})\s*\]"
    r"|(?P<other>[^\s,]+)"
)
_MESSAGE_OPEN = re.compile(
    r"<\s*MessageTo\s*\(\s*(?P<to>[A-Za-z0-9_\-]+)\s*,\s*(?P<quote>'''|'|\")"
)
_MESSAGE_CLOSE = {
    "'''": re.compile(r"'''\s*\)\s*>"),
    "'": re.compile(r"'\s*\)\s*>"),
    '"': re.compile(r"\"\s*\)\s*>"),
}
_TRIPLE_CLOSE = _MESSAGE_CLOSE["'''"]
_LISTEN = re.compile(r"<\s*ListenTo\s*\(\s*(?P<channel>Channel-[0-9]+)\s*\)\s*>")
_TOKEN_END = re.compile(r"[<>]")


@dataclass(frozen=True)
class TextAction:
    """One action as the model writes it; the bridge maps the name to an environment action."""

    name: str  # "Attack_Unit", "Move_Screen", "Stop", "No_Operation", Crafter's "Do", ...
    tags: tuple[str, ...] = ()  # hex unit tags, lower-cased: ("0x100030001",)
    point: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        """Refuse actions the grammar cannot write, so every action has a text that parses."""
        if not _ACTION_NAME.fullmatch(self.name) or self.name in _RESERVED_NAMES:
            raise ValueError(f"action name {self.name!r} is not an identifier or is reserved")
        if not isinstance(self.tags, tuple) or len(self.tags) > MAX_TAGS:
            raise ValueError(f"tags must be a tuple of at most {MAX_TAGS}, got {self.tags!r}")
        for tag in self.tags:
            if not _TAG.fullmatch(tag):
                raise ValueError(f"tag {tag!r} is not lower-case hex like 0x100030001")
        if self.point is not None and not (
            len(self.point) == 2
            and all(type(v) is int and -_POINT_LIMIT < v < _POINT_LIMIT for v in self.point)
        ):
            raise ValueError(f"point must be two integers of at most 9 digits: {self.point!r}")

    def text(self) -> str:
        """``<Attack_Unit(0x100030001)>``, ``<Move_Screen([23, 37])>``, ``<Stop()>``."""
        arguments = list(self.tags)
        if self.point is not None:
            arguments.append(f"[{self.point[0]}, {self.point[1]}]")
        return f"<{self.name}({', '.join(arguments)})>"


@dataclass(frozen=True)
class Message:
    """Text for another agent (by name) or for everyone listening to ``Channel-<i>``."""

    to: str
    text: str

    def __post_init__(self) -> None:
        if not _TARGET.fullmatch(self.to):
            raise ValueError(f"message target {self.to!r} is not a name [A-Za-z0-9_-]+")

    def text_form(self) -> str:
        """``<MessageTo(Commander, '''hello''')>``."""
        return f"<MessageTo({self.to}, '''{self.text}''')>"


@dataclass
class ParsedReply:
    """What a reply asks for, and one error line for each thing in it that could not be used."""

    actions: dict[str, list[TextAction]]  # every commanded team, in reply order
    messages: list[Message]
    listen: list[str]  # channels: ["Channel-1"]
    errors: list[str]


def parse_reply(reply: str, teams: Sequence[str], *, max_actions: int = 3) -> ParsedReply:
    """Read a model's whole reply by the rules of the module card; never raises on ``reply``."""
    _check_team_names(teams)
    if max_actions < 1:
        raise ValueError(f"max_actions must be at least 1, got {max_actions}")
    return _ReplyReader(reply, tuple(teams), max_actions).read()


def format_reply(
    actions: Mapping[str, Sequence[TextAction]],
    messages: Sequence[Message] = (),
    listen: Sequence[str] = (),
    analysis: str = "",
) -> str:
    """Write a reply in the layout of the module card (the teams in ``actions`` order)."""
    _check_team_names(list(actions))
    if any(header in analysis for header in _SECTION_HEADERS):
        raise ValueError(f"the analysis must not contain a section header {_SECTION_HEADERS}")
    rows = ["Analysis:"]
    if analysis:
        rows += ["  " + row for row in analysis.split("\n")]
    rows.append("Actions:")
    for team, team_actions in actions.items():
        rows.append(f"  Team {team}:")
        rows += ["    " + action.text() for action in team_actions]
    rows.append("Communications:")
    for message in messages:
        if any(_TRIPLE_CLOSE.search(row) for row in message.text.split("\n")):
            raise ValueError(f"message text {message.text!r} contains the end mark ''')>")
        rows.append("    " + message.text_form())
    for channel in listen:
        if not _CHANNEL.fullmatch(channel):
            raise ValueError(f"{channel!r} is not a channel like Channel-1")
        rows.append(f"    <ListenTo({channel})>")
    return "\n".join(rows) + "\n"


def _check_team_names(teams: Sequence[str]) -> None:
    if not teams:
        raise ValueError("at least one team is needed")
    for team in teams:
        if len(team) > MAX_TEAM_NAME or not _TEAM_NAME.fullmatch(team):
            raise ValueError(
                f"team name {team!r} must be words of [A-Za-z0-9_-] separated by single "
                f"spaces, at most {MAX_TEAM_NAME} characters"
            )


def _quote(text: str) -> str:
    """The text for an error line: cut to ``QUOTE_WIDTH`` and written on one line."""
    if len(text) > QUOTE_WIDTH:
        text = text[: QUOTE_WIDTH - 3] + "..."
    return repr(text)


def _token_end(line: str, start: int) -> int:
    """End of a malformed ``<...>`` at ``start``: after its ``>``, or before the next ``<``."""
    end = _TOKEN_END.search(line, start + 1)
    if end is None:
        return len(line)
    return end.end() if end.group() == ">" else end.start()


class _ReplyReader:
    """The parser's state while it walks the lines of one reply."""

    def __init__(self, reply: str, teams: tuple[str, ...], max_actions: int) -> None:
        self.lines = reply.split("\n")
        self.teams = teams
        self.max_actions = max_actions
        self.section = "preamble"  # then "actions" or "communications"
        self.saw_actions_header = False
        self.team: str | None = None  # where actions go now; None: they are dropped
        self.team_error_given = False  # the dropping has been reported once already
        self.actions: dict[str, list[TextAction]] = {team: [] for team in teams}
        self.dropped = dict.fromkeys(teams, 0)
        self.messages: list[Message] = []
        self.listen: list[str] = []
        self.errors: list[str] = []
        # Lines holding a ''')> end mark, for messages that span lines: (line, start, end).
        self.message_ends = [
            (number, mark.start(), mark.end())
            for number, line in enumerate(self.lines)
            if (mark := _TRIPLE_CLOSE.search(line)) is not None
        ]
        self.message_end_lines = [number for number, _, _ in self.message_ends]

    def read(self) -> ParsedReply:
        number = 0
        while number < len(self.lines):
            line = self.lines[number]
            first_token = line.find("<")
            self._read_headers(number, line if first_token < 0 else line[:first_token])
            if self.section == "preamble" or first_token < 0:
                number += 1
            else:
                number = self._read_tokens(number, first_token)
        return ParsedReply(self.actions, self.messages, self.listen, self._error_lines())

    def _error(self, number: int, text: str) -> None:
        self.errors.append(f"line {number + 1}: {text}")

    def _error_lines(self) -> list[str]:
        errors = list(self.errors)
        if not self.saw_actions_header:
            errors.insert(0, "the reply has no 'Actions:' section, so no actions were taken")
        for team, count in self.dropped.items():
            if count:
                errors.append(
                    f"team {team}: {count} action(s) after the first {self.max_actions} dropped"
                )
        if len(errors) > MAX_ERROR_LINES:
            hidden = len(errors) - MAX_ERROR_LINES
            errors = errors[:MAX_ERROR_LINES] + [f"... {hidden} more errors"]
        return errors

    def _read_headers(self, number: int, head: str) -> None:
        """Section headers and ``Team X:`` in the text before the line's first ``<``."""
        if "Communications:" in head:
            self.section = "communications"
        elif "Actions:" in head or "Action:" in head:
            self.section = "actions"
            self.saw_actions_header = True
            self.team = self.teams[0] if len(self.teams) == 1 else None
            self.team_error_given = False
        if self.section != "actions":
            return
        team_line = _TEAM_LINE.search(head)
        if team_line is None:
            return
        name = team_line["name"].strip(" \t\r*`")
        if name in self.teams:
            self.team, self.team_error_given = name, False
        else:
            self.team, self.team_error_given = None, True
            self._error(
                number,
                f"unknown team {_quote(name)}, its actions are dropped; "
                f"your teams: {', '.join(self.teams)}",
            )

    def _read_tokens(self, number: int, start: int) -> int:
        """Read every ``<...>`` from ``start`` on; returns the next line to read."""
        line = self.lines[number]
        while (start := line.find("<", start)) >= 0:
            token = _TOKEN_NAME.match(line, start)
            name = token["name"] if token is not None else ""
            if name == "MessageTo":
                number, start = self._read_message(number, start)
                line = self.lines[number]
            elif name == "ListenTo":
                start = self._read_listen(number, start)
            elif self.section == "actions":
                start = self._read_action(number, start)
            else:
                end = _token_end(line, start)
                self._error(
                    number,
                    f"{_quote(line[start:end])} is not read after 'Communications:' "
                    "(only MessageTo and ListenTo are)",
                )
                start = end
        return number + 1

    def _read_action(self, number: int, start: int) -> int:
        line = self.lines[number]
        written = _ACTION.match(line, start)
        if written is None:
            end = _token_end(line, start)
            self._error(
                number,
                f"cannot read {_quote(line[start:end])}; write <Name(arguments)>, "
                "e.g. <Attack_Unit(0x100030001)> or <Move_Screen([23, 37])>",
            )
            return end
        quoted = _quote(written.group())
        tags: list[str] = []
        points: list[tuple[int, int]] = []
        for argument in _ARGUMENT.finditer(written["arguments"]):
            if argument["other"] is not None:
                self._error(
                    number,
                    f"{quoted}: unrecognised argument {_quote(argument['other'])}; "
                    "arguments are tags like 0x100030001 and one point [x, y]",
                )
                return written.end()
            if argument["tag"] is not None:
                tags.append(argument["tag"].lower())
            else:
                points.append((int(argument["x"]), int(argument["y"])))
        if len(tags) > MAX_TAGS:
            self._error(number, f"{quoted}: {len(tags)} tags, at most {MAX_TAGS} are allowed")
        elif len(points) > 1:
            self._error(number, f"{quoted}: {len(points)} points, at most one is allowed")
        else:
            action = TextAction(written["name"], tuple(tags), points[0] if points else None)
            self._add_action(number, action)
        return written.end()

    def _add_action(self, number: int, action: TextAction) -> None:
        if self.team is None:
            if not self.team_error_given:
                self.team_error_given = True
                self._error(
                    number,
                    "action outside a team is dropped; put it under one of: "
                    + ", ".join(f"Team {team}:" for team in self.teams),
                )
            return
        kept = self.actions[self.team]
        if len(kept) < self.max_actions:
            kept.append(action)
        else:
            self.dropped[self.team] += 1

    def _read_listen(self, number: int, start: int) -> int:
        line = self.lines[number]
        listen = _LISTEN.match(line, start)
        if listen is not None:
            self.listen.append(listen["channel"])
            return listen.end()
        end = _token_end(line, start)
        self._error(number, f"cannot read {_quote(line[start:end])}; write <ListenTo(Channel-1)>")
        return end

    def _read_message(self, number: int, start: int) -> tuple[int, int]:
        """Read a message at ``start``; returns the line and position where reading goes on."""
        line = self.lines[number]
        opening = _MESSAGE_OPEN.match(line, start)
        if opening is None:
            end = _token_end(line, start)
            self._error(
                number,
                f"cannot read {_quote(line[start:end])}; write <MessageTo(Name, '''text''')>",
            )
            return number, end
        to, quote = opening["to"], opening["quote"]
        text_start = opening.end()
        close = _MESSAGE_CLOSE[quote].search(line, text_start)
        if close is not None:
            self.messages.append(Message(to, line[text_start : close.start()]))
            return number, close.end()
        if quote != "'''":
            self._error(
                number,
                f"message to {_quote(to)} does not end on its line with {quote})>; "
                "use ''' quotes for a text of several lines",
            )
            return number, len(line)
        following = bisect.bisect_right(self.message_end_lines, number)
        if following == len(self.message_ends):
            self._error(number, f"message to {_quote(to)} never ends with ''')>; dropped")
            return number, len(line)
        last, end_start, end_stop = self.message_ends[following]
        text_rows = [line[text_start:], *self.lines[number + 1 : last]]
        text_rows.append(self.lines[last][:end_start])
        self.messages.append(Message(to, "\n".join(text_rows)))
        return last, end_stop
